"""`python -m memories_emulator`: run the fake memories.ai API in the foreground.

Owns only the command-line wrapper around ``MemoriesEmulator`` for ``make demo``
(Procfile.demo), out-of-process tests and benchmarks: it reads options and keys, prints one
line per request to stdout, and stops cleanly on SIGINT or SIGTERM. No Django needed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from memories_emulator.core import MemoriesEmulator

KEYS_ENV = "MEMORIES_EMULATOR_KEYS"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m memories_emulator",
        description="Run a local memories.ai API emulator (dev/test tool) until interrupted.")
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
    parser.add_argument("--upload-time-unit", choices=["ms", "s"], default="ms",
                        help="unit of uploadTime (and list_videos' create_time) in answers: ms since "
                             "the epoch as documented (default), or s, as a memories.ai that sends seconds")
    parser.add_argument("--stream-delay", type=float, default=0.15,
                        help="seconds between the frames of a streamed chat answer")
    parser.add_argument("--no-rate-limits", action="store_true",
                        help="do not limit search, chat, transcripts and summaries (published: 1/s, 2/min, "
                             "1/s, 1/s per key; else code 0429)")
    parser.add_argument("--no-control-api", action="store_true", help="do not serve /_emulator/*")
    args = parser.parse_args(argv)
    env_keys = [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
    args.keys = list(dict.fromkeys(args.keys + env_keys))
    if not args.keys:
        parser.error(f"give at least one API key with --key or {KEYS_ENV}")
    return args


def log_to_stdout() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log = logging.getLogger("memportal.emulator")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    # stdout is the one place this process reports to; other handlers would repeat it.
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    emulator = MemoriesEmulator(
        args.keys, args.host, args.port,
        upload_interval=args.upload_interval, callback_delay=args.callback_delay,
        parse_delay=args.parse_delay, send_callbacks=not args.no_callbacks,
        control_api=not args.no_control_api, upload_time_unit=args.upload_time_unit,
        stream_delay=args.stream_delay, rate_limits={} if args.no_rate_limits else None,
    )
    log_to_stdout()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        emulator.start()
    except OSError as exc:
        print(f"memories_emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    keys_shown = f"{len(args.keys)} key" + ("" if len(args.keys) == 1 else "s")
    print(f"memories.ai emulator on {emulator.base_url} "
          f"({keys_shown}, uploads paced every {args.upload_interval:g}s)", flush=True)
    # Polled: the kernel may hand a signal to one of the server's threads, and Python runs the
    # handler only once the main thread wakes; a wait without a timeout might never wake.
    while not stop.wait(0.5):
        pass
    emulator.stop()
    print("memories.ai emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
