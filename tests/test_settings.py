"""Configuration: the production settings the docs describe pass `check --deploy`; mistakes fail loudly."""

import os
import subprocess
import sys

from cryptography.fernet import Fernet

from .conftest import ROOT

PRODUCTION = {
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-secret-that-is-long-enough-0123456789",
    "DJANGO_ALLOWED_HOSTS": "videos.example.com",
    "DJANGO_BEHIND_PROXY": "true",
    "MEMPORTAL_PUBLIC_URL": "https://videos.example.com",
}


def clean_env(**env):
    """This environment without the portal's settings, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MEMPORTAL_", "MEMORIES_"))}
    clean.pop("DATABASE_URL", None)
    clean["MEMPORTAL_VAR_DIR"] = os.path.join(os.environ["MEMPORTAL_VAR_DIR"], "settings-check")  # this run's
    return {**clean, **env}


def manage(*args, **env):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=clean_env(**env),
                          capture_output=True, text=True, timeout=120)


def test_the_documented_production_settings_pass_check_deploy():
    result = manage("check", "--deploy", **PRODUCTION, MEMPORTAL_FERNET_KEYS=Fernet.generate_key().decode())
    assert result.returncode == 0, result.stderr
    # Only the HSTS preload opt-in remains, which docs/deploy.md leaves to the operator.
    assert "ERRORS" not in result.stderr and "security.W021" in result.stderr
    assert "W0" not in result.stderr.replace("security.W021", "")


def test_a_missing_or_wrong_encryption_key_fails_the_checks():
    missing = manage("check", **PRODUCTION)
    assert missing.returncode != 0 and "Set MEMPORTAL_FERNET_KEYS (" in missing.stderr
    wrong = manage("check", **PRODUCTION, MEMPORTAL_FERNET_KEYS="not-a-fernet-key")
    assert wrong.returncode != 0 and "not a Fernet key" in wrong.stderr
    assert "not-a-fernet-key" not in wrong.stderr


def test_without_a_secret_key_production_refuses_to_start():
    result = manage("check", **{k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"},
                    MEMPORTAL_FERNET_KEYS=Fernet.generate_key().decode())
    assert result.returncode != 0 and "Set DJANGO_SECRET_KEY" in result.stderr


def test_every_model_change_has_its_migration():
    result = manage("makemigrations", "--check", "--dry-run", **PRODUCTION,
                    MEMPORTAL_FERNET_KEYS=Fernet.generate_key().decode())
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_heartbeat_threshold_below_the_read_timeout_is_warned_about():
    result = manage("check", **PRODUCTION, MEMPORTAL_FERNET_KEYS=Fernet.generate_key().decode(),
                    MEMPORTAL_HEARTBEAT_STALE_SECONDS="60", MEMORIES_READ_TIMEOUT="120")
    assert "memportal.W002" in result.stderr


REQUIRED = ("DJANGO_SECRET_KEY", "MEMPORTAL_FERNET_KEYS", "DJANGO_ALLOWED_HOSTS", "MEMPORTAL_PUBLIC_URL")


def settings_refusal(**env):
    """memportal/settings.py run afresh, as a process starting in `env` would: the names its
    refusal to start gives (empty: it started)."""
    result = subprocess.run([sys.executable, "-c", "import runpy; runpy.run_path('memportal/settings.py')"],
                            cwd=ROOT, env=clean_env(**env), capture_output=True, text=True, timeout=120)
    if result.returncode == 0:
        return []
    line = result.stderr.strip().splitlines()[-1]
    prefix = "django.core.exceptions.ImproperlyConfigured: Set "
    assert line.startswith(prefix) and "(or DJANGO_DEBUG=true for development" in line, result.stderr
    return line.removeprefix(prefix).split(" (", 1)[0].split(", ")


def test_production_names_every_missing_variable_in_one_message():
    complete = {**PRODUCTION, "MEMPORTAL_FERNET_KEYS": Fernet.generate_key().decode()}
    assert settings_refusal(**complete) == []
    assert settings_refusal() == list(REQUIRED)
    for name in REQUIRED:
        assert settings_refusal(**{k: v for k, v in complete.items() if k != name}) == [name]
    assert settings_refusal(DJANGO_ALLOWED_HOSTS="videos.example.com") == [
        "DJANGO_SECRET_KEY", "MEMPORTAL_FERNET_KEYS", "MEMPORTAL_PUBLIC_URL"]
    # Set but empty (or only commas and spaces) is missing too...
    assert settings_refusal(**{**complete, "DJANGO_SECRET_KEY": " ", "DJANGO_ALLOWED_HOSTS": " , "}) == [
        "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"]
    # ...except MEMPORTAL_PUBLIC_URL, whose empty value means "no callbacks" (behind a firewall).
    assert settings_refusal(**{**complete, "MEMPORTAL_PUBLIC_URL": ""}) == []


def test_development_needs_none_of_them():
    assert settings_refusal(DJANGO_DEBUG="true") == []
