"""Relay memory and throughput: uploads.memories.upload() against `curl -F`, same sink, same run.

    .venv/bin/python bench/relay_memory.py [--size-mib 1024] [--runs 3] [--naive] [--write-docs]

A file of --size-mib random bytes (under var/bench/, deleted at the end) is sent to the project's
memories.ai emulator (`manage.py memories_emulator`, its own process, so its parsing does not
count against the relay) --runs times by a relaying process and by curl, alternately. After each
upload the sink's /_emulator/state must show the file's size and sha256.

The relaying process is a fresh Python child per run: it sets up Django, makes one list_videos
call (so lazy imports inside requests are done, as in a worker that has talked to memories.ai
before), opens the file with open(path, "rb"), resets its peak RSS (`5` into
/proc/self/clear_refs), reads VmRSS as idle, calls upload(), then reads VmHWM (the kernel's exact
peak, no sampling) as peak. Throughput is payload bytes over the wall time of the upload() call
and of curl's whole transfer (curl's own time_total). CPU is user+system seconds of the relay
process during upload() and of the curl process.

Targets (the issue): peak RSS within 64 MiB of idle, and relay throughput at least 80% of curl's.
--naive adds one run of requests.post(files=...), which reads the whole file into memory.
"""

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import benchlib
from benchlib import DOCS, ROOT

NAME = "relay_memory"
BENCH_DIR = ROOT / "var" / "bench"
KEY = "bench-relay-key-0001"
UPLOAD_PATH = "/serve/api/video/upload"
MIB = 1024 * 1024
RSS_BUDGET_MIB = 64
MIN_RATIO = 0.8
RELAY, CURL = "relay: `uploads.memories.upload()`", "`curl -F`"


def proc_status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def child(spec: dict) -> None:
    """Runs in the relaying process: one upload, one JSON line on stdout."""
    import gc

    import django
    django.setup()
    import requests
    from uploads import memories

    memories.list_videos(KEY)
    size = os.path.getsize(spec["path"])
    with open(spec["path"], "rb") as fileobj:
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
        idle = proc_status_kib("VmRSS")
        cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        if spec["mode"] == "naive":  # requests builds the whole multipart body in memory
            answer = requests.post(spec["url"], headers={"Authorization": KEY}, timeout=(10, 600),
                                   files={"file": ("bench.mp4", fileobj, "video/mp4")})
            assert answer.json()["code"] == "0000", answer.text
        else:
            memories.upload(KEY, fileobj, size=size, filename="bench.mp4", content_type="video/mp4",
                            callback_url=None)
        seconds, cpu1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"idle_kib": idle, "peak_kib": proc_status_kib("VmHWM"), "seconds": seconds,
                      "cpu": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, "bytes": size}))


def django_env(base_url: str) -> dict:
    from cryptography.fernet import Fernet
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "memportal.settings", "DJANGO_DEBUG": "true",
            "MEMPORTAL_FERNET_KEYS": Fernet.generate_key().decode(), "MEMPORTAL_VAR_DIR": str(BENCH_DIR),
            "MEMORIES_API_BASE_URL": base_url, "MEMORIES_UPLOAD_PATH": UPLOAD_PATH,
            "MEMORIES_EMULATOR_KEYS": KEY, "MEMPORTAL_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}


def make_file(size_mib: int) -> tuple[Path, str]:
    path, digest = BENCH_DIR / f"relay-{os.getpid()}.mp4", hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(size_mib):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            out.write(chunk)
    return path, digest.hexdigest()


class Sink:
    """`manage.py memories_emulator` on a free loopback port, in its own process."""

    def __init__(self):
        self.log = BENCH_DIR / f"sink-{os.getpid()}.log"
        self.env = django_env("http://127.0.0.1:9")
        self.proc, self.base_url = benchlib.start_emulator(
            ["--port", "0", "--upload-interval", "0", "--no-callbacks"], self.env, self.log)
        if self.base_url is None:
            output = self.log.read_text()  # before stop() removes the log
            self.stop()
            raise RuntimeError(f"the sink did not start:\n{output}")
        self.env["MEMORIES_API_BASE_URL"] = self.base_url

    def check_last_upload(self, size: int, sha256: str) -> None:
        last = benchlib.emulator_state(self.base_url)["uploads"][-1]
        if (last["size"], last["sha256"], last["code"]) != (size, sha256, "0000"):
            raise RuntimeError(f"the sink got something else: {last}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.unlink(missing_ok=True)


def run_relay(sink: Sink, path: Path, mode: str) -> dict:
    spec = {"mode": mode, "path": str(path), "url": sink.base_url + UPLOAD_PATH}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], cwd=ROOT, env=sink.env,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the {mode} process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_curl(sink: Sink, path: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # "Expect:" drops curl's Expect: 100-continue round trip (~45 ms per upload here; requests has none).
    done = subprocess.run(["curl", "-sS", "-F", f"file=@{path};type=video/mp4", "-H", f"Authorization: {KEY}",
                           "-H", "Expect:", "-w", "\n%{time_total}", sink.base_url + UPLOAD_PATH],
                          capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    body, seconds = done.stdout.rsplit("\n", 1)
    if json.loads(body)["code"] != "0000":
        raise RuntimeError(f"curl's upload was refused: {body}")
    return {"seconds": float(seconds), "bytes": path.stat().st_size,
            "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}


def mib_s(run: dict) -> float:
    return run["bytes"] / MIB / run["seconds"]


def report(results: dict[str, list[dict]]) -> tuple[str, bool]:
    """Markdown tables of the figures (the first row is the shipped relay), and whether both targets pass."""
    relay, curl = results[RELAY], results[CURL]
    curl_rate = statistics.median(mib_s(r) for r in curl)
    lines = ["| client | MiB/s per run | median MiB/s | % of curl | CPU s per GiB sent | peak RSS − idle (MiB) |",
             "|---|---|---|---|---|---|"]
    for label, runs in results.items():
        rate = statistics.median(mib_s(r) for r in runs)
        cpu = statistics.median(r["cpu"] * 1024 * MIB / r["bytes"] for r in runs)
        over = f"{max(r['peak_kib'] - r['idle_kib'] for r in runs) / 1024:.1f}" if "peak_kib" in runs[0] else "–"
        lines.append(f"| {label} | {', '.join(f'{mib_s(r):.0f}' for r in runs)} | {rate:.0f} "
                     f"| {rate / curl_rate:.0%} | {cpu:.2f} | {over} |")
    over = max(r["peak_kib"] - r["idle_kib"] for r in relay) / 1024
    ratio = statistics.median(mib_s(r) for r in relay) / curl_rate
    ok_rss, ok_rate = over <= RSS_BUDGET_MIB, ratio >= MIN_RATIO
    lines += [
        "", f"Idle RSS of the relaying process: {statistics.median(r['idle_kib'] for r in relay) / 1024:.1f} MiB "
        "(median); peak RSS − idle is the worst run.",
        "", "| target (shipped relay) | measured | result |", "|---|---|---|",
        f"| peak RSS ≤ idle + {RSS_BUDGET_MIB} MiB | +{over:.1f} MiB | {'PASS' if ok_rss else 'FAIL'} |",
        f"| relay throughput ≥ {MIN_RATIO:.0%} of curl's | {ratio:.0%} | {'PASS' if ok_rate else 'FAIL'} |",
    ]
    return "\n".join(lines), ok_rss and ok_rate


def cpu_idle(seconds: float) -> float:
    """The machine's idle share of CPU time over the next `seconds` (from /proc/stat)."""
    idle0, all0 = benchlib.cpu_ticks()
    time.sleep(seconds)
    idle1, all1 = benchlib.cpu_ticks()
    return (idle1 - idle0) / max(all1 - all0, 1)


def machine() -> str:
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split()[1]
    return (f"{os.cpu_count()} CPUs, {mem_kib / MIB:.0f} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}, curl {curl}")


def write_docs(args, tables: str, idle_before: float) -> None:
    command = benchlib.command_line(NAME)
    benchlib.write_section(NAME, "\n".join([
        "## Relay memory and throughput (bench/relay_memory.py)", "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}, with `{command}`; CPUs {idle_before:.0%} "
        "idle in the 2 s before (other work on the machine moves MiB/s, not RSS).",
        "",
        tables, "",
        f"What is measured: a {args.size_mib} MiB file of random bytes (in the page cache) is sent {args.runs} "
        "times by each client, in turn, to the project's memories.ai emulator on 127.0.0.1 "
        "(`manage.py memories_emulator`, a separate process that parses and hashes the multipart body); "
        "after every upload the emulator's record must match the file's size and sha256.",
        "Each relay run is a fresh Python process that sets up Django and makes one list_videos call; "
        "right before `upload()` it resets its peak RSS (`5` into `/proc/self/clear_refs`) and reads "
        "VmRSS (idle), after it reads VmHWM, the kernel's exact peak (no sampling). "
        "Throughput is payload bytes over the wall time of `upload()`, or over curl's `time_total`; "
        "CPU is user+system time of the relay process during `upload()`, or of the whole curl process. "
        "curl runs as `curl -sS -F file=@PATH;type=video/mp4 -H 'Authorization: KEY' -H Expect: URL`: "
        "without `Expect:` it waits ~45 ms per upload for a 100-continue that requests never asks for.",
        "Both clients share the sink and the machine's cores: the sink's Python multipart parser is the "
        "bottleneck for both, which is why CPU per GiB shows the clients' own cost better than MiB/s.",
    ]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--runs", type=int, default=3, help="uploads per client (default 3)")
    parser.add_argument("--naive", action="store_true", help="also one requests.post(files=...) run")
    parser.add_argument("--write-docs", action="store_true", help=f"update this section of {DOCS.name}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return 0
    if not shutil.which("curl"):
        sys.exit("curl is needed: apt-get install curl")
    if (idle_before := cpu_idle(2)) < 0.9:
        print(f"warning: CPUs only {idle_before:.0%} idle; other work will skew MiB/s", file=sys.stderr)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path, sha256 = make_file(args.size_mib)
    sink = None
    try:
        sink = Sink()
        clients = {RELAY: lambda: run_relay(sink, path, "relay"), CURL: lambda: run_curl(sink, path)}
        results = {label: [] for label in clients}
        for run in range(1, args.runs + 1):
            for label, measure in clients.items():
                results[label].append(measure())
                sink.check_last_upload(path.stat().st_size, sha256)
                print(f"run {run} {label}: {mib_s(results[label][-1]):.0f} MiB/s", file=sys.stderr)
        if args.naive:
            results["`requests.post(files=...)`, for contrast (1 run)"] = [run_relay(sink, path, "naive")]
            sink.check_last_upload(path.stat().st_size, sha256)
    finally:
        if sink is not None:
            sink.stop()
        path.unlink()
    tables, ok = report(results)
    print(tables)
    if args.write_docs:
        write_docs(args, tables, idle_before)
        print(f"\nwrote {DOCS.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
