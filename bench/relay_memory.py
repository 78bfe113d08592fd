"""Relay memory and throughput: uploads.memories.upload() against `curl -F`, same sink, same run.

    .venv/bin/python bench/relay_memory.py [--size-mib 1024] [--runs 3] [--naive] [--json]
    .venv/bin/python bench/relay_memory.py --size-mib 64 --runs 1      # a quick run
    .venv/bin/python bench/relay_memory.py --s3                        # also from S3 (moto_server)

Needs curl; no database. A file of --size-mib random bytes (under var/bench/, deleted at the
end) is sent --runs times by a relaying process and by curl, in turn, to the project's
memories.ai emulator (memories_emulator.MemoriesEmulator, served by this process, which does
nothing else meanwhile). --naive adds one run of requests.post(files=...) for contrast. --s3 adds
the relay reading the same file from S3 as the relay task does (uploads.tasks.stored_stream: the
object's body as it arrives), the object held by moto_server on loopback; every relay run checks
its open files every 64 MiB, and a copy of the file on disk fails the bench.

Each relay run is a fresh Python child: it sets up Django, makes one list_videos call, opens the
file, resets its peak RSS (`5` into /proc/self/clear_refs), reads VmRSS (idle), calls upload(),
then reads VmHWM (the kernel's exact peak). MiB/s is payload over the wall time of upload(), or
over curl's time_total; CPU is user+system time of the relay during upload(), or of curl.
Prints, per client: MiB/s per run, median, % of curl, CPU s per GiB, peak RSS - idle (worst run).
"""

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchlib
from benchlib import ROOT

BENCH_DIR = ROOT / "var" / "bench"
KEY = "bench-relay-key-0001"
BUCKET, S3_KEY = "memportal-bench", "videos/bench/relay.mp4"
UPLOAD_PATH = "/serve/api/video/upload"
MIB = 1024 * 1024


def status_kib(field):
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def child(spec):
    """Runs in the relaying process: one upload, one JSON line on stdout."""
    import gc

    import django
    django.setup()
    import requests
    from uploads import memories

    memories.list_videos(KEY)  # lazy imports inside requests done, as in a worker that has talked before
    opened = stored_file(spec)
    size, copies = spec["bytes"], set()

    def on_progress(sent):  # what the relay task's heartbeat sees; every ~64 MiB, a look at /proc
        if sent // (64 * MIB) != (sent - 1) // (64 * MIB):
            copies.update(copies_on_disk())

    with opened as fileobj:
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
        idle = status_kib("VmRSS")
        cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        if spec["mode"] == "naive":  # requests builds the whole multipart body in memory
            requests.post(spec["url"], headers={"Authorization": KEY}, timeout=(10, 600),
                          files={"file": ("bench.mp4", fileobj, "video/mp4")}).raise_for_status()
        else:
            memories.upload(KEY, fileobj, size=size, filename="bench.mp4", content_type="video/mp4",
                            callback_url=None, on_progress=on_progress)
        seconds, cpu1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"idle_kib": idle, "peak_kib": status_kib("VmHWM"), "seconds": seconds, "bytes": size,
                      "cpu": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime,
                      "copies_on_disk": sorted(copies)}))


def stored_file(spec):
    """The file as the relay task opens it (uploads.tasks.stored_stream): from the local folder,
    or from S3 (django-storages' storage, MEMPORTAL_STORAGE=s3 in this child's environment)."""
    if spec["mode"] != "relay-s3":
        return open(spec["path"], "rb")
    from types import SimpleNamespace

    from django.db.models.fields.files import FieldFile

    from uploads.models import Video
    from uploads.tasks import stored_stream
    return stored_stream(SimpleNamespace(file=FieldFile(None, Video._meta.get_field("file"), spec["key"])))


def copies_on_disk():
    """Regular files this process holds open besides the source: a spooled copy would be one."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")) and "relay-" not in target \
                and not target.endswith((".so", ".py", ".pyc")):
            found.add(target)
    return found


def relay_env(base_url):
    from cryptography.fernet import Fernet
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "memportal.settings", "DJANGO_DEBUG": "true",
            "MEMPORTAL_FERNET_KEYS": Fernet.generate_key().decode(), "MEMPORTAL_VAR_DIR": str(BENCH_DIR),
            "MEMORIES_API_BASE_URL": base_url, "MEMORIES_UPLOAD_PATH": UPLOAD_PATH,
            "MEMPORTAL_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}


def run_relay(env, base_url, path, mode):
    spec = json.dumps({"mode": mode, "path": str(path), "url": base_url + UPLOAD_PATH, "key": S3_KEY,
                       "bytes": path.stat().st_size})
    done = subprocess.run([sys.executable, __file__, "--child", spec], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the {mode} process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_curl(base_url, path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # "Expect:" drops curl's Expect: 100-continue round trip (~45 ms per upload; requests sends none).
    done = subprocess.run(["curl", "-sS", "-F", f"file=@{path};type=video/mp4", "-H", f"Authorization: {KEY}",
                           "-H", "Expect:", "-w", "\n%{time_total}", base_url + UPLOAD_PATH],
                          capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": float(done.stdout.rsplit("\n", 1)[1]), "bytes": path.stat().st_size,
            "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}


def start_s3(path):
    """moto_server on a loopback port, holding the file as the S3 object the relay reads."""
    import boto3
    import requests
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.get(endpoint, timeout=2)
            break
        except requests.RequestException:
            time.sleep(0.1)
    s3_env = {"MEMPORTAL_STORAGE": "s3", "MEMPORTAL_S3_BUCKET": BUCKET, "MEMPORTAL_S3_ENDPOINT_URL": endpoint,
              "MEMPORTAL_S3_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench")
    client.create_bucket(Bucket=BUCKET)
    client.upload_file(str(path), BUCKET, S3_KEY)
    return moto, s3_env


def make_file(size_mib):
    path, digest = BENCH_DIR / f"relay-{os.getpid()}.mp4", hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(size_mib):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            out.write(chunk)
    return path, digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--runs", type=int, default=3, help="uploads per client (default 3)")
    parser.add_argument("--naive", action="store_true", help="also one requests.post(files=...) run")
    parser.add_argument("--s3", action="store_true",
                        help="also relay from S3 (moto_server on loopback; requirements-test.txt)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))
    if not shutil.which("curl"):
        raise SystemExit("curl is needed: apt-get install curl")
    from memories_emulator import MemoriesEmulator

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    machine, idle_before = benchlib.machine("curl"), 1 - benchlib.busy_cores(2) / os.cpu_count()
    path, sha256 = make_file(args.size_mib)
    sink = MemoriesEmulator([KEY], "127.0.0.1", 0, upload_interval=0, send_callbacks=False).start()
    env = relay_env(sink.base_url)
    clients = {"relay": lambda: run_relay(env, sink.base_url, path, "relay"),
               "curl": lambda: run_curl(sink.base_url, path)}
    if args.naive:
        clients["naive"] = lambda: run_relay(env, sink.base_url, path, "naive")
    moto = None
    if args.s3:
        moto, s3_env = start_s3(path)
        clients["relay-s3"] = lambda: run_relay({**env, **s3_env}, sink.base_url, path, "relay-s3")
    results = {name: [] for name in clients}
    try:
        for i in range(args.runs):
            for name, measure in clients.items():
                if name == "naive" and i:
                    continue  # one run is enough to show it
                results[name].append(measure())
                last = sink.uploads[-1]
                if (last.size, last.sha256, last.code) != (path.stat().st_size, sha256, "0000"):
                    raise SystemExit(f"invalid run: the sink received {last}")
    finally:
        sink.stop()
        path.unlink()
        if moto is not None:
            benchlib.stop(moto)
    copies = sorted({c for runs in results.values() for r in runs for c in r.get("copies_on_disk", [])})
    if copies:
        raise SystemExit(f"a relay held a copy of the file on disk: {copies}")

    rate = lambda r: r["bytes"] / MIB / r["seconds"]  # noqa: E731
    curl_rate = statistics.median(rate(r) for r in results["curl"])
    figures = {"machine": machine, "cpu_idle_before": round(idle_before, 2), "size_mib": args.size_mib,
               "relay_idle_rss_mib": statistics.median(r["idle_kib"] for r in results["relay"]) / 1024}
    for name, runs in results.items():
        over = max(r["peak_kib"] - r["idle_kib"] for r in runs) / 1024 if "peak_kib" in runs[0] else None
        figures[name] = {"mib_s": [rate(r) for r in runs], "median_mib_s": statistics.median(rate(r) for r in runs),
                         "cpu_s_per_gib": statistics.median(r["cpu"] * 1024 * MIB / r["bytes"] for r in runs),
                         "peak_minus_idle_mib": over}
        figures[name]["of_curl"] = figures[name]["median_mib_s"] / curl_rate
    lines = [machine, f"CPUs {idle_before:.0%} idle in the 2 s before; a {args.size_mib} MiB file", ""]
    lines += benchlib.table(
        ["client", "MiB/s per run", "median MiB/s", "% of curl", "CPU s per GiB sent", "peak RSS - idle (MiB)"],
        [[name, ", ".join(f"{x:.0f}" for x in f["mib_s"]), f"{f['median_mib_s']:.0f}",
          f"{f['of_curl']:.0%}", f"{f['cpu_s_per_gib']:.2f}",
          "-" if f["peak_minus_idle_mib"] is None else f"{f['peak_minus_idle_mib']:.1f}"]
         for name in results for f in [figures[name]]])
    lines.append(f"\nidle RSS of the relaying process: {figures['relay_idle_rss_mib']:.1f} MiB (median)")
    benchlib.report(figures, lines, args.json)


if __name__ == "__main__":
    sys.exit(main())
