"""Loaded by pytest before Django's settings (pytest.ini: -p tests.testenv): the test environment.

Tests run with production settings minus TLS, in a var/ folder of their own, fresh for each
run, against the project's memories.ai emulator on loopback; nothing here reaches the network.
"""

import os
import shutil
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
TEST_FERNET_KEY = Fernet.generate_key().decode()

# Everything the settings keep under MEMPORTAL_VAR_DIR (stored videos in media/, uploads
# streaming in tmp/, the SQLite test database) goes to a new folder per run, so no run sees
# another's files; worker subprocesses inherit the environment and so the folder. It is made
# under var/test/ rather than /tmp, which may be RAM-backed (see FILE_UPLOAD_TEMP_DIR).
(ROOT / "var" / "test").mkdir(parents=True, exist_ok=True)
VAR_DIR = Path(tempfile.mkdtemp(prefix="run-", dir=ROOT / "var" / "test"))
if os.environ.get("DATABASE_URL", "").startswith("postgres"):
    TEST_DB_NAME = f"test_memportal_{os.getpid()}"
else:
    TEST_DB_NAME = str(VAR_DIR / "test-memportal.sqlite3")

os.environ.update({
    "MEMPORTAL_TEST_DB_NAME": TEST_DB_NAME,
    # The live server's request threads must not keep connections open past the test run.
    "MEMPORTAL_DB_CONN_MAX_AGE": "0",
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "test-secret-key-" + "x" * 40,
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_SECURE_COOKIES": "false",
    "DJANGO_SECURE_HSTS_SECONDS": "0",
    "DJANGO_ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
    "MEMPORTAL_STATIC_MANIFEST": "false",
    "MEMPORTAL_VAR_DIR": str(VAR_DIR),
    "MEMPORTAL_UPLOAD_TEMP_DIR": str(VAR_DIR / "tmp"),  # not a developer's own setting
    "MEMPORTAL_STORAGE": "local",  # tests/test_storage.py chooses S3 for itself
    "MEMPORTAL_FERNET_KEYS": TEST_FERNET_KEY,
    "MEMORIES_API_BASE_URL": "http://127.0.0.1:9",  # each test points it at its own emulator
    "MEMPORTAL_PUBLIC_URL": "",
    # The suite's own log lines go to its root handler; the secret audit (tests/secret_audit.py)
    # gives each test's subprocesses a file of their own.
    "MEMPORTAL_LOG_FILE": "",
    "MEMPORTAL_LOG_FORMAT": "json",  # production's
})


def pytest_unconfigure(config):
    # After pytest-django has dropped the test database and every worker has been stopped.
    shutil.rmtree(VAR_DIR, ignore_errors=True)
