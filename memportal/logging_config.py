"""The LOGGING setting (memportal/settings.py): every line through the context and redacting
filters of memportal/logs.py, as JSON or plain text, to the console and optionally a file.
Standard library only: the settings module imports it."""


def logging_config(fmt, log_file, level):
    handler = {"formatter": fmt, "filters": ["context", "redact"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "memportal.logs.JsonFormatter"},
                       "plain": {"()": "memportal.logs.PlainFormatter"}},
        "filters": {"context": {"()": "memportal.logs.ContextFilter"},
                    "redact": {"()": "memportal.logs.RedactingFilter"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", **handler},
            **({"file": {"class": "logging.FileHandler", "filename": log_file, "encoding": "utf-8", **handler}}
               if log_file else {}),
        },
        "root": {"handlers": ["console", "file"] if log_file else ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            # Django's own default handlers (console with DEBUG, django.server) lack the redacting
            # filter and would print callback URLs: these loggers go through the root's handler only.
            "django": {"handlers": [], "propagate": True},
            "django.server": {"handlers": [], "propagate": True},
            # django-axes tells every sign-in at INFO ("Deleted 0 failed login attempts"): the audit
            # trail holds what matters; its warnings (lockouts) still show.
            "axes": {"level": "WARNING"},
        },
    }
