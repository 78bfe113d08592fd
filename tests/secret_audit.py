"""The secret audit (pytest.ini: -p tests.secret_audit): no log line of the whole suite holds an API
key or a callback token; the session fails when one does.

1. Every secret the suite makes is recorded where it comes into being, without changing what
   happens there: raw API keys (ApiKey.set_secret, what crypto.encrypt is given and
   crypto.decrypt gives back), callback tokens (Video.callback_token, the one derivation), and the
   keys every memories.ai emulator is configured with.
2. Every log line is kept as the project's own root handler formatted it (its format() is
   wrapped), with the test that was running; and, for the subprocesses tests start (workers,
   the clock, manage.py), every line they log: MEMPORTAL_LOG_FILE is set to a file of the
   running test's own under the run's var folder, which settings.LOGGING appends to and every
   child inherits. What pytest captured of a test's output, and the output conftest's
   stop_worker() reads from a worker's pipe, are scanned too.
3. At the end every line is searched for every secret; a hit fails the session (exit status 1)
   with the test, the logger and the kind of secret, never the secret or the line.

Secrets shorter than MIN_LENGTH are not searched for: they cannot be told from ordinary text.
"""

import bisect
import json
import logging
import os
import re
import time
from collections import defaultdict
from pathlib import Path

import pytest

from memportal.logs import escape_controls
from tests import testenv

MIN_LENGTH = 8
LOG_DIR = Path(testenv.VAR_DIR) / "audit-logs"
HEX = re.compile(r"[0-9a-f]+")


class Audit:
    def __init__(self):
        self.secrets = {}  # secret -> what it is
        self.lines = []  # (test, logger, where, text)
        self.test = "(outside any test)"
        self.log_files = {}  # file name -> test
        self.leaks = []
        self.scan_seconds = 0.0

    def record(self, secret, kind):
        """Keep a secret, and the forms a log line would hold it in: its control characters
        escaped (memportal.logs.clean), and either of those inside a JSON string."""
        if isinstance(secret, str):
            for value in {secret, secret.strip()}:
                for form in {value, escape_controls(value)}:
                    for written in {form, json.dumps(form, ensure_ascii=False)[1:-1]}:
                        if len(written) >= MIN_LENGTH:
                            self.secrets.setdefault(written, kind)
        return secret

    def keep(self, logger, where, text):
        self.lines.append((self.test, logger, where, text))

    def keep_output(self, text, where, test=None):
        for line in (text or "").splitlines():
            self.lines.append((test or self.test, logger_of(line), where, line))

    def scan(self):
        """[(test, logger, where, kind)] of every line that holds a secret, each line once."""
        text = "\n".join(line for *_, line in self.lines)
        starts, offset = [], 0
        for *_, line in self.lines:
            starts.append(offset)
            offset += len(line) + 1
        hits = {}
        hex_secrets, other = defaultdict(set), []
        for secret in self.secrets:
            (hex_secrets[len(secret)].add(secret) if HEX.fullmatch(secret) else other.append(secret))
        for secret in other:  # API keys: few, searched for one by one
            position = text.find(secret)
            while position != -1:
                hits.setdefault(bisect.bisect_right(starts, position) - 1, secret)
                position = text.find(secret, position + 1)
        if hex_secrets:  # callback tokens (hex, many): looked up in each long enough run of hex digits
            shortest = min(hex_secrets)
            for run in re.finditer(r"[0-9a-f]{%d,}" % shortest, text):
                digits = run.group()
                for length, secrets in hex_secrets.items():
                    for start in range(len(digits) - length + 1):
                        if digits[start:start + length] in secrets:
                            hits.setdefault(bisect.bisect_right(starts, run.start() + start) - 1,
                                            digits[start:start + length])
        return [(*self.lines[index][:3], self.secrets[secret]) for index, secret in sorted(hits.items())]


AUDIT = Audit()


def logger_of(line):
    """The logger named by a log line (JSON, or the plain format's fourth word), if it is one."""
    try:
        event = json.loads(line)
        return event.get("logger", "?") if isinstance(event, dict) else "?"
    except ValueError:
        words = line.split(" ", 4)
        return words[3] if len(words) > 4 and words[2].isupper() else "(not a log line)"


def scan_output(text, where):
    """For output a test reads from a pipe (conftest.stop_worker): scanned with the running test."""
    AUDIT.keep_output(text, where)


def wrap(owner, name, recording):
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        return recording(original, *args, **kwargs)

    setattr(owner, name, wrapper)


def record_where_secrets_come_into_being():
    from memories_emulator import MemoriesEmulator
    from uploads import crypto
    from uploads.models import ApiKey, Video

    def set_secret(original, key, raw, *args, **kwargs):
        AUDIT.record(raw, "an API key (ApiKey.set_secret)")
        return original(key, raw, *args, **kwargs)

    def encrypt(original, plaintext, *args, **kwargs):
        AUDIT.record(plaintext, "an API key (crypto.encrypt)")
        return original(plaintext, *args, **kwargs)

    def decrypt(original, *args, **kwargs):
        return AUDIT.record(original(*args, **kwargs), "an API key (crypto.decrypt)")

    def emulator_init(original, emulator, keys=(), *args, **kwargs):
        keys = list(keys)
        for key in keys:
            AUDIT.record(key, "an API key (the emulator's keys)")
        return original(emulator, keys, *args, **kwargs)

    def add_key(original, emulator, key):
        AUDIT.record(key, "an API key (the emulator's keys)")
        return original(emulator, key)

    def make_token(original, generator, user):
        return AUDIT.record(original(generator, user), "a password-reset token")

    def may_see_details(original, request, *args, **kwargs):
        from django.conf import settings
        AUDIT.record(settings.MEMPORTAL_HEALTH_TOKEN, "the health token")
        return original(request, *args, **kwargs)

    from django.contrib.auth.tokens import PasswordResetTokenGenerator

    from uploads import health
    wrap(PasswordResetTokenGenerator, "make_token", make_token)
    wrap(health, "may_see_details", may_see_details)
    wrap(ApiKey, "set_secret", set_secret)
    wrap(crypto, "encrypt", encrypt)
    wrap(crypto, "decrypt", decrypt)
    wrap(MemoriesEmulator, "__init__", emulator_init)
    wrap(MemoriesEmulator, "add_key", add_key)
    derive = Video.__dict__["callback_token"].fget
    Video.callback_token = property(lambda video: AUDIT.record(derive(video), "a callback token"),
                                    doc=derive.__doc__)


def keep_what_the_root_handler_writes():
    from memportal.logs import RedactingFilter

    handlers = [h for h in logging.getLogger().handlers if any(isinstance(f, RedactingFilter) for f in h.filters)]
    assert handlers, "secret audit: settings.LOGGING's root handler is not installed"
    for handler in handlers:
        original = handler.format

        def format(record, original=original):
            line = original(record)
            AUDIT.keep(record.name, "in-process root handler", line)
            return line

        handler.format = format


def pytest_sessionstart(session):
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    record_where_secrets_come_into_being()
    keep_what_the_root_handler_writes()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    AUDIT.test = item.nodeid
    log_file = LOG_DIR / f"{len(AUDIT.log_files):05d}.log"
    AUDIT.log_files[log_file.name] = item.nodeid
    os.environ["MEMPORTAL_LOG_FILE"] = str(log_file)  # every subprocess the test starts inherits it
    try:
        return (yield)
    finally:
        os.environ.pop("MEMPORTAL_LOG_FILE", None)
        AUDIT.test = "(outside any test)"


def pytest_runtest_logreport(report):
    for title, content in report.sections:
        if title.startswith("Captured") and "log" not in title:  # "Captured log" is caplog's own format
            AUDIT.keep_output(content, f"pytest's {title.lower()}", test=report.nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    for name, test in AUDIT.log_files.items():
        path = LOG_DIR / name
        if path.exists():
            AUDIT.keep_output(path.read_text(errors="replace"), "a subprocess's log file", test=test)
    started = time.monotonic()
    AUDIT.leaks = AUDIT.scan()
    AUDIT.scan_seconds = time.monotonic() - started
    if AUDIT.leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if not AUDIT.leaks:
        terminalreporter.line(f"secret audit: no log line holds one of the {len(AUDIT.secrets)} API keys and callback "
                              f"tokens recorded ({len(AUDIT.lines)} lines read in {AUDIT.scan_seconds:.1f} s)")
        return
    found = defaultdict(list)  # one line may be read twice: from the handler and from pytest's capture
    for test, logger, where, kind in AUDIT.leaks:
        found[test, logger, kind].append(where)
    terminalreporter.section("secret audit", sep="=", red=True, bold=True)
    terminalreporter.line(f"log lines of {len(found)} test/logger pair(s) hold an API key or a callback token "
                          f"(of {len(AUDIT.secrets)} secrets recorded, {len(AUDIT.lines)} lines read):", red=True)
    for (test, logger, kind), wheres in found.items():
        terminalreporter.line(f"  {test}: logger {logger!r} wrote {kind} (seen in: {', '.join(sorted(set(wheres)))})",
                              red=True)
