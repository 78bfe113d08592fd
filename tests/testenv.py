"""Loaded by pytest before Django's settings (pytest.ini: -p tests.testenv): the test environment.

Tests run with production settings minus TLS, in their own var/ folder, against the project's
memories.ai emulator on loopback; nothing here reaches the network.
"""

import os
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
TEST_FERNET_KEY = Fernet.generate_key().decode()

VAR_TEST = ROOT / "var" / "test"
if os.environ.get("DATABASE_URL", "").startswith("postgres"):
    TEST_DB_NAME = f"test_memportal_{os.getpid()}"
else:
    TEST_DB_NAME = str(VAR_TEST / f"test-memportal-{os.getpid()}.sqlite3")

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
    "MEMPORTAL_VAR_DIR": str(VAR_TEST),
    "MEMPORTAL_FERNET_KEYS": TEST_FERNET_KEY,
    "MEMORIES_API_BASE_URL": "http://127.0.0.1:9",  # each test points it at its own emulator
    "MEMPORTAL_PUBLIC_URL": "",
})
