"""Reading the environment for memportal/settings.py: typed values that fail loudly when
malformed, and a developer's var/secrets.env as defaults. Standard library and Django's
ImproperlyConfigured only: the settings module imports it."""

import os

from django.core.exceptions import ImproperlyConfigured


def load_local_env(path):
    """Defaults from var/secrets.env (written once by the Makefile), so `manage.py` works on a
    developer's machine without sourcing it: its keys, and the loopback host names with no
    callbacks (the Makefile's local runs). The real environment always wins; a production
    install has no such file (docs/deploy.md: /etc/memportal/env)."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            os.environ.setdefault(name.strip(), value.strip())
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    os.environ.setdefault("MEMPORTAL_PUBLIC_URL", "")


def envstr(name, default=""):
    return os.environ.get(name, default)


def envbool(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def envfloat(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def envlist(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]
