"""Ingest: uploads through nginx + gunicorn into local storage and into S3, beside nginx writing the body itself.

    .venv/bin/python bench/ingest.py [--sizes-mib 256,1024] [--runs 3] [--big-bytes 3000000000] [--json]
    .venv/bin/python bench/ingest.py --sizes-mib 64 --runs 1 --big-bytes 0 --no-s3      # a quick run

Needs nginx (Debian's), curl, PostgreSQL, moto_server (requirements-test.txt). One run starts,
on loopback, for each target a gunicorn (the Procfile's `web` line, DJANGO_BEHIND_PROXY=true,
database memportal_bench_ingest) behind its own nginx rendered from deploy/nginx/memportal.conf
(bench/nginxlib.py):

- "nginx write": curl to a location of the first nginx where nginx only writes the request body
  to a file (client_body_in_file_only, then 204 from a server block of the same nginx): the best
  the disk and loopback do for the same multipart body, the same curl;
- "local": the portal as shipped (upload location unbuffered) into local storage;
- "local, nginx buffers": the same with proxy_request_buffering on, for the buffering decision;
- "S3": the portal as shipped into S3 storage, a moto_server on 127.0.0.1 (in-process S3: a
  copy in memory and in its temporary files, so S3 figures say little about a real S3).

The files (random bytes that open like an MP4) are made under var/bench-ingest/ before any
measurement, each size sent --runs times to each target, in turn; then one --big-bytes upload
(default 3 * 1000**3, the default limit) to "local". Every upload is checked (portal: 302 to the
list, the Video's size and sha256 equal the file's, the stored object's size) and its stored
copy removed. Per upload: curl's time_total; CPU s of gunicorn's workers and of nginx; the
gunicorn workers' peak RSS over their RSS before (VmHWM, reset with clear_refs); the peak bytes on
disk under var/bench-ingest/ held by nginx and gunicorn (open files, deleted ones included, and
the media folder, sampled every 20 ms); bytes nginx and gunicorn wrote into files (write_bytes).
Everything made is removed at the end (files, database).
"""

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchlib
import nginxlib
from benchlib import ROOT, proc_cpu
from nginxlib import MIB

DB_NAME = "memportal_bench_ingest"
VAR = ROOT / "var" / "bench-ingest"
BUCKET = "memportal-bench"
GIB = 1024 * MIB


def start_moto():
    port = nginxlib.free_port()
    (VAR / "moto-tmp").mkdir(parents=True, exist_ok=True)
    proc = benchlib.start([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                          {**os.environ, "TMPDIR": str(VAR / "moto-tmp")}, VAR / "moto.log", start_new_session=True)
    nginxlib.wait_port(port, proc, VAR / "moto.log", seconds=60)
    return proc, f"http://127.0.0.1:{port}"


class Target:
    def __init__(self, name, env, buffering=None, baseline=False):
        self.name = name
        self.port, self.gport = nginxlib.free_port(), nginxlib.free_port()
        extra_locations = extra_http = ""
        if baseline:
            sink = nginxlib.free_port()
            extra_http = f"    server {{ listen 127.0.0.1:{sink}; access_log off; return 204; }}\n"
            extra_locations = (  # the body written to a file by nginx, then dropped; nothing passed on
                "location = /bench/nginx-write {\n        client_max_body_size 0;\n"
                "        client_body_buffer_size 1m;\n        client_body_in_file_only clean;\n"
                "        proxy_pass_request_body off;\n        proxy_set_header Content-Length \"\";\n"
                f"        proxy_pass http://127.0.0.1:{sink};\n    }}\n\n    ")
        var = VAR / name.replace(" ", "-").replace(",", "")
        folder = nginxlib.render(var, port=self.port, redirect_port=nginxlib.free_port(), upstream_port=self.gport,
                                 buffering=buffering, extra_locations=extra_locations, extra_http=extra_http)
        self.gunicorn, self.argv = nginxlib.start_gunicorn(env, self.gport, var / "gunicorn.log")
        self.nginx = nginxlib.start_nginx(folder, self.port)

    def stop(self):
        benchlib.stop(self.nginx)
        benchlib.stop(self.gunicorn)


def curl(url, path, cookie, csrf):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-H", "Expect:", "-H", f"Cookie: {cookie}",
                           "-F", f"csrfmiddlewaretoken={csrf}", "-F", f"files=@{path};type=video/mp4",
                           "-w", "%{http_code} %{time_total} %{redirect_url}", url],
                          capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    code, seconds, location = (done.stdout.split() + [""])[:3]
    return {"status": int(code or 0), "seconds": float(seconds or 0), "location": location, "stderr": done.stderr,
            "client_cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}


def observed(target, size, send):
    """`send()` (an upload of `size` bytes to `target`, returning a dict with at least its
    "seconds" and the client's CPU s as "client_cpu") with what gunicorn's workers, nginx and the
    machine spent meanwhile: (send's answer, the figures)."""
    workers = nginxlib.pids_of(target.gunicorn)[1:]
    nginx_pids = nginxlib.pids_of(target.nginx)
    nginxlib.reset_peak_rss(workers)
    idle = {pid: nginxlib.status_kib(pid, "VmRSS") for pid in workers}
    cpu0 = {pid: proc_cpu(pid) for pid in workers + nginx_pids}
    wrote0 = nginxlib.write_bytes(nginx_pids), nginxlib.write_bytes(workers)
    busy0, t0 = benchlib.busy_seconds(), time.monotonic()
    with nginxlib.DiskSampler(nginx_pids + workers, VAR, [VAR / "media"]) as disk:
        answer = send()
    wall = time.monotonic() - t0
    busy = (benchlib.busy_seconds() - busy0) / wall
    wrote = nginxlib.write_bytes(nginx_pids) - wrote0[0], nginxlib.write_bytes(workers) - wrote0[1]
    cpu = {pid: proc_cpu(pid) - cpu0[pid] for pid in workers + nginx_pids}
    return answer, {
        "target": target.name, "bytes": size, "seconds": answer["seconds"],
        "mib_s": size / MIB / answer["seconds"] if answer["seconds"] else 0,
        "gunicorn_cpu": sum(cpu[p] for p in workers), "nginx_cpu": sum(cpu[p] for p in nginx_pids),
        "curl_cpu": answer["client_cpu"], "machine_busy_cores": busy,
        # the rest of the machine's busy time: other work, PostgreSQL, moto_server, this process
        "other_cores": busy - (sum(cpu.values()) + answer["client_cpu"]) / wall,
        "peak_rss_minus_idle_mib": max((nginxlib.status_kib(p, "VmHWM") - idle[p]) / 1024 for p in workers),
        "peak_disk_mib": disk.extra / MIB, "nginx_wrote_mib": wrote[0] / MIB, "gunicorn_wrote_mib": wrote[1] / MIB}


def measure(target, path, size, sha256, cookie, csrf, s3, baseline=False):
    """One upload through `target`'s nginx; its figures, after checking what was stored (then removed)."""
    from uploads.models import Video

    url = f"http://127.0.0.1:{target.port}" + ("/bench/nginx-write" if baseline else "/videos/upload/")
    answer, result = observed(target, size, lambda: curl(url, path, cookie, csrf))
    if baseline:
        if answer["status"] != 204:
            raise SystemExit(f"invalid run: the nginx write answered {answer['status']} {answer['stderr']}")
        return result
    video = Video.objects.order_by("-created_at").first()
    if answer["status"] != 302 or not answer["location"].endswith("/videos/") or video is None \
            or (video.size, video.sha256) != (size, sha256):
        raise SystemExit(f"invalid run: {target.name} answered {answer['status']} {answer['location']} "
                         f"{answer['stderr']}; stored {video and (video.size, video.sha256)}")
    if s3 is None:
        stored = VAR / "media" / video.file.name
        if stored.stat().st_size != size:
            raise SystemExit(f"invalid run: {stored} holds {stored.stat().st_size} bytes, not {size}")
        stored.unlink()
    else:
        client, bucket = s3
        head = client.head_object(Bucket=bucket, Key=video.file.name)
        if head["ContentLength"] != size:
            raise SystemExit(f"invalid run: the S3 object holds {head['ContentLength']} bytes, not {size}")
        client.delete_object(Bucket=bucket, Key=video.file.name)
    video.delete()
    return result


def summary(results, name, size, base_rate):
    runs = [r for r in results if r["target"] == name and r["bytes"] == size]
    if not runs:
        return None
    median = statistics.median(r["mib_s"] for r in runs)
    per_gib = lambda key: statistics.median(r[key] * GIB / r["bytes"] for r in runs)  # noqa: E731
    return {"target": name, "size_mib": size // MIB, "mib_s": [round(r["mib_s"]) for r in runs],
            "median_mib_s": round(median), "of_nginx_write": median / base_rate if base_rate else None,
            "seconds": [round(r["seconds"], 2) for r in runs],
            "gunicorn_cpu_s_per_gib": round(per_gib("gunicorn_cpu"), 2),
            "nginx_cpu_s_per_gib": round(per_gib("nginx_cpu"), 2),
            "curl_cpu_s_per_gib": round(per_gib("curl_cpu"), 2),
            "peak_rss_minus_idle_mib": round(max(r["peak_rss_minus_idle_mib"] for r in runs), 1),
            "peak_disk_mib": round(max(r["peak_disk_mib"] for r in runs)),
            "wrote_mib": f"{statistics.median(r['nginx_wrote_mib'] for r in runs):.0f} + "
                         f"{statistics.median(r['gunicorn_wrote_mib'] for r in runs):.0f}",
            "machine_busy_cores": round(statistics.median(r["machine_busy_cores"] for r in runs), 2),
            "other_cores": round(statistics.median(r["other_cores"] for r in runs), 2)}


def prepare():
    """curl and nginx there, the run's folder empty: the machine line and the cores busy before."""
    for tool in ("curl", nginxlib.NGINX):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed: apt-get install curl nginx-light")
    shutil.rmtree(VAR, ignore_errors=True)
    VAR.mkdir(parents=True)
    machine = f"{benchlib.machine('curl', 'postgres')}, {nginxlib.version()}"
    busy_before = benchlib.busy_cores(2)
    print(f"{machine}; {busy_before:.2f} cores busy in the 2 s before", flush=True)
    return machine, busy_before


def start_s3(db_name, common):
    """A moto_server with the run's bucket: (its process, the portal's environment on it and
    database `db_name`, a boto3 client)."""
    import boto3

    moto, endpoint = start_moto()
    env = benchlib.bench_env(db_name, VAR, MEMPORTAL_STORAGE="s3", MEMPORTAL_S3_BUCKET=BUCKET,
                             MEMPORTAL_S3_ENDPOINT_URL=endpoint, MEMPORTAL_S3_REGION="us-east-1",
                             AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                             AWS_DEFAULT_REGION="us-east-1", **common)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    return moto, env, client


def summary_table(rows, first="target", client="curl"):
    """The lines of summary()'s rows as a table."""
    return benchlib.table(
        [first, "MiB", "MiB/s per run", "median", "% of nginx write", "gunicorn CPU s/GiB", "nginx CPU s/GiB",
         f"{client} CPU s/GiB", "worker peak RSS - idle (MiB)", "peak on disk (MiB)",
         "written: nginx + gunicorn (MiB)", "machine busy (cores)", "of which others"],
        [[r["target"], r["size_mib"], ", ".join(map(str, r["mib_s"])), r["median_mib_s"],
          "-" if r["of_nginx_write"] is None else f"{r['of_nginx_write']:.0%}",
          "-" if r["target"] == "nginx write" else r["gunicorn_cpu_s_per_gib"], r["nginx_cpu_s_per_gib"],
          r["curl_cpu_s_per_gib"], "-" if r["target"] == "nginx write" else r["peak_rss_minus_idle_mib"],
          r["peak_disk_mib"], r["wrote_mib"], r["machine_busy_cores"], r["other_cores"]] for r in rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mib", default="256,1024", help="file sizes in MiB (default 256,1024)")
    parser.add_argument("--runs", type=int, default=3, help="uploads per size and target (default 3)")
    parser.add_argument("--big-bytes", type=int, default=3 * 1000**3,
                        help="one upload of this size to local storage at the end (default 3 * 1000**3; 0: none)")
    parser.add_argument("--no-s3", action="store_true", help="leave out the S3 target")
    parser.add_argument("--no-buffered", action="store_true", help="leave out the nginx-buffers target")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) * MIB for s in args.sizes_mib.split(",")]
    machine, busy_before = prepare()
    limit = max(sizes + [args.big_bytes, 3 * 1000**3])
    common = dict(DJANGO_BEHIND_PROXY="true", MEMPORTAL_UPLOAD_TEMP_DIR=VAR / "tmp", MEMPORTAL_DB_CONN_MAX_AGE=0,
                  MEMPORTAL_MAX_UPLOAD_BYTES=limit, MEMPORTAL_MAX_REQUEST_BYTES=limit + MIB)
    env = benchlib.bench_env(DB_NAME, VAR, MEMPORTAL_STORAGE="local", **common)
    targets, moto, files = [], None, []
    try:
        files = [(size, VAR / f"source-{size // MIB}.mp4") for size in sizes]
        digests = {size: nginxlib.Source(size, seed=b"ingest %d" % size).write(path) for size, path in files}
        benchlib.setup_database(DB_NAME, env)
        nginxlib.seed(env)
        targets.append(Target("local", env, baseline=True))
        if not args.no_buffered:
            targets.append(Target("local, nginx buffers", env, buffering="on"))
        s3 = None
        if not args.no_s3:
            moto, s3_env, client = start_s3(DB_NAME, common)
            s3 = (client, BUCKET)
            targets.append(Target("S3", s3_env))
        benchlib.django_setup(env)
        session, _ = nginxlib.sign_in(f"http://127.0.0.1:{targets[0].port}")
        cookie, csrf = nginxlib.cookie_header(session), session.cookies["csrftoken"]
        print(f"gunicorn: {' '.join(targets[0].argv)}", flush=True)

        results = []
        for run in range(args.runs):
            for size, path in files:
                results.append({**measure(targets[0], path, size, digests[size], cookie, csrf, None, baseline=True),
                                "target": "nginx write"})
                for target in targets:
                    results.append(measure(target, path, size, digests[size], cookie, csrf,
                                           s3 if target.name == "S3" else None))
                print(f"run {run + 1}, {size // MIB} MiB: " + ", ".join(
                    f"{r['target']} {r['mib_s']:.0f} MiB/s" for r in results[-len(targets) - 1:]), flush=True)
        for _, path in files:
            path.unlink()
        big = None
        if args.big_bytes:
            path = VAR / "source-big.mp4"
            sha = nginxlib.Source(args.big_bytes, seed=b"ingest big").write(path)
            big = measure(targets[0], path, args.big_bytes, sha, cookie, csrf, None)
            path.unlink()
    finally:
        for target in targets:
            target.stop()
        if moto:
            benchlib.stop(moto)
        benchlib.run(["dropdb", *benchlib.PG, "--if-exists", "--force", DB_NAME], check=False)
        shutil.rmtree(VAR, ignore_errors=True)

    names = ["nginx write"] + [t.name for t in targets]
    rows = []
    for size in sizes:
        base = summary(results, "nginx write", size, None)["median_mib_s"]
        rows += [summary(results, name, size, base) for name in names]
    figures = {"machine": machine, "busy_cores_before": round(busy_before, 2), "runs": args.runs, "rows": rows,
               "big": big, "gunicorn": " ".join(targets[0].argv)}
    lines = [machine, f"{busy_before:.2f} cores busy in the 2 s before; {args.runs} runs per size and target", ""]
    lines += summary_table(rows)
    if big:
        lines.append(f"\n{args.big_bytes} bytes to local storage: stored whole in {big['seconds']:.1f} s "
                     f"({big['mib_s']:.0f} MiB/s), gunicorn {big['gunicorn_cpu']:.1f} CPU s, worker peak RSS - idle "
                     f"{big['peak_rss_minus_idle_mib']:.1f} MiB, peak on disk {big['peak_disk_mib']:.0f} MiB, "
                     f"machine {big['machine_busy_cores']:.2f} cores busy ({big['other_cores']:.2f} by others)")
    benchlib.report(figures, lines, args.json)


if __name__ == "__main__":
    sys.exit(main())
