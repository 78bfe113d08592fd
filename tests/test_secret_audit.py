"""The secret audit (tests/secret_audit.py) is real: it records the suite's secrets as they come
into being, and a session whose log lines hold one fails, naming the test and the logger only."""

import subprocess
import sys
import textwrap
from pathlib import Path

from . import secret_audit, testenv
from .conftest import ROOT, TEST_KEY

LEAKY_SESSION = '''
import logging
import subprocess
import sys

from uploads.models import ApiKey, Video

KEY = "sk-mavi-leak-0123456789abcdef-L3AK"
VIDEO = "6d1c0b6e-2f0a-4c39-9a55-0e4f3c2b1a00"


def test_a_key_written_to_the_log():
    key = ApiKey(label="leaky")
    key.set_secret(KEY)
    logging.getLogger("uploads.leaky").warning("the key is %s", key.reveal())


def test_a_callback_token_written_by_a_subprocess():
    token = Video(pk=VIDEO, callback_generation=7).callback_token
    child = ("import logging, sys, django; django.setup(); "
             "logging.getLogger('uploads.child').warning('token %s', sys.argv[1])")
    subprocess.run([sys.executable, "-c", child, token], check=True, stderr=subprocess.DEVNULL,
                   env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "memportal.settings"})


def test_a_masked_key_is_fine():
    key = ApiKey(label="fine")
    key.set_secret("sk-mavi-fine-0123456789abcdef-F1NE")
    logging.getLogger("uploads.fine").warning("the key is %s", key.masked)
'''


def test_the_suites_secrets_are_recorded_as_they_come_into_being(api_key, processing, emulator):
    assert secret_audit.AUDIT.secrets[TEST_KEY].startswith("an API key")
    assert secret_audit.AUDIT.secrets[processing.callback_token] == "a callback token"


def test_a_session_whose_log_holds_a_secret_fails_and_names_the_test_and_logger_only():
    leaky = Path(testenv.VAR_DIR) / "audit-demo" / "test_leaky.py"  # under the root: a plain node id
    leaky.parent.mkdir()
    leaky.write_text(textwrap.dedent(LEAKY_SESSION))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(leaky)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "3 passed" in output  # the tests themselves pass: the audit fails the session
    assert "log lines of 2 test/logger pair(s) hold an API key or a callback token" in output
    node = leaky.relative_to(ROOT)
    assert f"{node}::test_a_key_written_to_the_log: logger 'uploads.leaky' wrote an API key" in output
    assert (f"{node}::test_a_callback_token_written_by_a_subprocess: logger 'uploads.child' wrote a callback "
            "token (seen in: a subprocess's log file)") in output
    assert "test_a_masked_key_is_fine" not in output
    assert "sk-mavi-leak" not in output and "L3AK" not in output
