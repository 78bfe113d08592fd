"""`manage.py memories_emulator`: run the fake memories.ai API in the foreground.

Owns only the command-line wrapper around ``uploads.emulator.MemoriesEmulator``
for ``make demo`` and out-of-process tests: it reads options and keys, prints
one line per request to stdout, and stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from uploads.emulator import MemoriesEmulator

KEYS_ENV = "MEMORIES_EMULATOR_KEYS"


class Command(BaseCommand):
    help = "Run a local memories.ai API emulator (dev/test tool) until interrupted."
    # The emulator needs no database or project checks; it must start even when the portal
    # itself is misconfigured.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
        parser.add_argument("--key", action="append", default=[], dest="keys",
                            help=f"an accepted API key (repeatable); prefer {KEYS_ENV}=k1,k2 so keys "
                                 "stay out of the process list")
        parser.add_argument("--upload-interval", type=float, default=60.0,
                            help="seconds between accepted uploads per key (else code 0429)")
        parser.add_argument("--callback-delay", type=float, default=3.0,
                            help="seconds from an upload to its UNPARSE callback")
        parser.add_argument("--parse-delay", type=float, default=10.0,
                            help="seconds from an upload to PARSE (and its callback)")
        parser.add_argument("--no-callbacks", action="store_true", help="never POST status callbacks")
        parser.add_argument("--no-control-api", action="store_true", help="do not serve /_emulator/*")

    def handle(self, *args, **options):
        env_keys = [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
        keys = list(dict.fromkeys(options["keys"] + env_keys))
        if not keys:
            raise CommandError(f"give at least one API key with --key or {KEYS_ENV}")
        emulator = MemoriesEmulator(
            keys, options["host"], options["port"],
            upload_interval=options["upload_interval"], callback_delay=options["callback_delay"],
            parse_delay=options["parse_delay"], send_callbacks=not options["no_callbacks"],
            control_api=not options["no_control_api"],
        )
        self._log_to_stdout()
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        try:
            emulator.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}") from exc
        keys_shown = f"{len(keys)} key" + ("" if len(keys) == 1 else "s")
        self.stdout.write(f"memories.ai emulator on {emulator.base_url} "
                          f"({keys_shown}, uploads paced every {options['upload_interval']:g}s)")
        self.stdout.flush()
        stop.wait()
        emulator.stop()
        self.stdout.write("memories.ai emulator stopped")

    def _log_to_stdout(self) -> None:
        handler = logging.StreamHandler(self.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log = logging.getLogger("memportal.emulator")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        # stdout is the one place this process reports to; the project's handlers would repeat it.
        log.propagate = False
