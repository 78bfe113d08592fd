"""Keeps per-video callback tokens out of the logs.

The callback URL is the only thing that authenticates memories.ai's status callbacks, so its
token is a secret: Django's request logger ("Bad Request: /callbacks/memories/<token>/") and
gunicorn's access log would otherwise write it down. Both go through redact().
"""

import logging
import re

from gunicorn.glogging import Logger

CALLBACK_TOKEN = re.compile(r"(/callbacks/memories/)[^/\s\"?]+")


def redact(text: str) -> str:
    return CALLBACK_TOKEN.sub(r"\1…", text)


class RedactingFilter(logging.Filter):
    """Installed on the log handlers (settings.LOGGING): rewrites every record's message."""

    def filter(self, record):
        message = record.getMessage()
        if "/callbacks/memories/" in message:
            record.msg, record.args = redact(message), ()
        return True


class GunicornLogger(Logger):
    """gunicorn --logger-class: the access log line without callback tokens."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        # The path shows up in several atoms (r, U, {raw_uri}e, {path_info}e, ...): redact all.
        return {name: redact(value) if isinstance(value, str) else value for name, value in atoms.items()}
