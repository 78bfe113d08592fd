"""Keeps per-video callback tokens out of the logs, and forged lines out of them too.

The callback URL is the only thing that authenticates memories.ai's status callbacks, so its
token is a secret: Django's request logger ("Bad Request: /callbacks/memories/<token>/") and
gunicorn's access log would otherwise write it down. Both go through clean(), which also escapes
control characters: a value that came from outside (a callback's status, a file name, a path)
with a newline in it would otherwise write a line of its own that looks like the portal's.
"""

import logging
import re

from gunicorn.glogging import Logger

CALLBACK_TOKEN = re.compile(r"(/callbacks/memories/)[^/\s\"?]+")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def redact(text: str) -> str:
    return CALLBACK_TOKEN.sub(r"\1…", text)


def escape_controls(text: str) -> str:
    """Control characters as visible escapes (a newline becomes \\x0a): one record, one line."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                       text)


def clean(text: str) -> str:
    return escape_controls(redact(text))


class RedactingFilter(logging.Filter):
    """Installed on the log handlers (settings.LOGGING): rewrites every record's message (a
    traceback, formatted apart from the message, keeps its lines)."""

    def filter(self, record):
        message = record.getMessage()
        cleaned = clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


class GunicornLogger(Logger):
    """gunicorn --logger-class: the access log line without callback tokens."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        # The path shows up in several atoms (r, U, {raw_uri}e, {path_info}e, ...): redact all.
        return {name: clean(value) if isinstance(value, str) else value for name, value in atoms.items()}
