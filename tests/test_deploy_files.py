"""The operator's files say what the Procfile says: one systemd unit per Procfile process, each
starting exactly that command, restarted, with the env file, as a user that is not root."""

import configparser
import re

import pytest

from .conftest import ROOT

UNITS = {"web": "memportal-web@.service", "worker-relay": "memportal-worker-relay@.service",
         "worker": "memportal-worker@.service", "clock": "memportal-clock.service"}


def procfile():
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def unit(name):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read_string((ROOT / "deploy" / "systemd" / name).read_text())
    return parser


def test_every_procfile_process_has_a_unit_and_nothing_else_does():
    assert set(procfile()) == set(UNITS)
    assert {path.name for path in (ROOT / "deploy" / "systemd").glob("*.service")} == set(UNITS.values())


@pytest.mark.parametrize("process", sorted(UNITS))
def test_a_unit_runs_the_procfile_command_restarted_with_the_env_file_as_a_plain_user(process):
    service = unit(UNITS[process])["Service"]
    command = " && exec ".join(filter(None, [service.get("ExecStartPre"), service["ExecStart"]]))
    venv = "/srv/memportal/.venv/bin/"
    expected = procfile()[process].removeprefix("exec ")
    expected = re.sub(r"\$\{MEMPORTAL_BIND:-[^}]*\}", "127.0.0.1:%i", expected)
    expected = re.sub(r"\$\{WEB_CONCURRENCY:-[^}]*\}", "${WEB_CONCURRENCY}", expected)
    expected = re.sub(r"(^|&& exec )(python|gunicorn) ", lambda m: f"{m[1]}{venv}{m[2]} ", expected)
    assert command == expected
    assert service["Restart"] == "always"
    assert service["EnvironmentFile"] == "/etc/memportal/env"
    assert service["User"] not in ("", "root") and service["WorkingDirectory"] == "/srv/memportal"
