"""Resumable uploads (tus, /uploads/tus/): 1 GiB in the portal's chunks beside the single-request
form and beside nginx writing the body itself, in the same run; then the bytes sent again after a
cut at 50 %.

    .venv/bin/python bench/resumable.py [--sizes-mib 256,1024] [--runs 3] [--big-bytes 3000000000] [--json]
    .venv/bin/python bench/resumable.py --sizes-mib 64 --runs 1 --big-bytes 0 --no-s3     # a quick run

Needs nginx (Debian's), curl, PostgreSQL, moto_server (requirements-test.txt). Like
bench/ingest.py (whose targets and figures it uses): one gunicorn as the Procfile's `web` line
runs it behind nginx rendered from deploy/nginx/memportal.conf, local storage, demo-member signed
in. Per size and run, in turn:

- "nginx write": curl to a location where nginx only writes the body to a file (the ceiling);
- "form": curl posting the file to /videos/upload/ (one request, the page without JavaScript);
- "resumable": the file sent as the upload page sends it: POST /uploads/tus/ (creation), then
  PATCHes of MEMPORTAL_UPLOAD_CHUNK_BYTES each at the offset the server answered, through nginx's
  /uploads/tus/ location (buffered, one chunk); a Python client on a new connection per request
  (its CPU is in the client column).

Each upload is checked (the Video's size; the stored file's size and SHA-256 equal the file's)
and removed. Then one --big-bytes resumable upload (default 3 * 1000**3), for RSS flat in size.

The cut: one upload of --cut-mib (default 1024) per way, the connection closed half-way through the
chunk that crosses 50 % (half of it sent), the offset asked again (HEAD) and the rest sent from
there; "sent again" is every byte sent less the file's size:
- through nginx (the shipped location buffers each chunk: nothing of the cut chunk reaches gunicorn);
- straight to gunicorn, local storage (what arrived of the cut chunk is kept);
- straight to gunicorn, S3 storage (moto_server: the offset covers whole parts only).
"""

import argparse
import resource
import shutil
import signal
import sys
import time

import benchlib
import ingest
import nginx_resumable
import nginxlib
from benchlib import ROOT
from nginxlib import MIB

DB_NAME = "memportal_bench_resumable"
VAR = ingest.VAR = ROOT / "var" / "bench-resumable"  # ingest's targets and sampler use it
BUCKET = ingest.BUCKET


def opener(path):
    """read(offset, n) of the file at `path`, on one open file."""
    handle = open(path, "rb")

    def read(offset, n):
        handle.seek(offset)
        return handle.read(n)
    return read


def tus_upload(addr, headers, team, path, size, chunk, name):
    """`path` sent as the upload page sends it; the answer in ingest.observed's terms."""
    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    status, answer, body = nginx_resumable.create(addr, headers, size, {"filename": name, **({"team": team} if team else {})})
    if status != 201:
        raise SystemExit(f"invalid run: creating a resumable upload answered {status} {body[:300]!r}")
    offset, last, sent = nginx_resumable.send_chunks(addr, answer["location"], headers, opener(path), 0, size, chunk)
    seconds, cpu1 = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds, "client_cpu": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime,
            "offset": offset, "sent": sent, "video_url": last.get("memportal-video-url", "")}


def check_stored(answer, size, sha256, storage_root=None, s3=None):
    """The video the last chunk named holds the file (size and SHA-256); then removed."""
    from uploads.models import Video

    video = Video.objects.filter(pk=answer["video_url"].strip("/").rsplit("/", 1)[-1] or None).first() \
        if answer["video_url"] else None
    if answer["offset"] != size or video is None or video.size != size:
        raise SystemExit(f"invalid run: the resumable upload ended at {answer['offset']} of {size}, "
                         f"video {answer['video_url']!r} {video and video.size}")
    if s3 is None:
        stored = storage_root / video.file.name
        digest = nginxlib.sha256_file(stored)
        stored.unlink()
    else:
        client, bucket = s3
        digest = s3_sha256(client, bucket, video.file.name)
        client.delete_object(Bucket=bucket, Key=video.file.name)
    if digest != sha256:
        raise SystemExit(f"invalid run: the stored copy of {video.pk} differs from the file")
    video.delete()


def s3_sha256(client, bucket, key):
    import hashlib

    digest = hashlib.sha256()
    for block in client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(4 * MIB):
        digest.update(block)
    return digest.hexdigest()


def cut_at_half(addr, headers, team, path, size, chunk, name):
    """One upload whose chunk across 50 % is cut half-way: where it resumed, what was sent again."""
    status, answer, body = nginx_resumable.create(addr, headers, size, {"filename": name, **({"team": team} if team else {})})
    if status != 201:
        raise SystemExit(f"invalid run: creating a resumable upload answered {status} {body[:300]!r}")
    location, read, t0 = answer["location"], opener(path), time.monotonic()
    offset, _, sent = nginx_resumable.send_chunks(addr, location, headers, read, 0, size // 2, chunk)
    sent += nginx_resumable.cut_chunk(addr, location, offset, read(offset, chunk), headers)
    cut_at = offset + chunk // 2
    time.sleep(0.5)
    status, head, _ = nginx_resumable.tus_request(addr, "HEAD", location, headers)
    resumed = int(head.get("upload-offset", -1))
    if status != 200 or not 0 <= resumed <= cut_at:
        raise SystemExit(f"invalid run: HEAD after the cut answered {status}, offset {resumed}")
    end, last, more = nginx_resumable.send_chunks(addr, location, headers, read, resumed, size, chunk)
    return {"seconds": time.monotonic() - t0, "offset": end, "video_url": last.get("memportal-video-url", ""),
            "cut_at": cut_at, "resumed_at": resumed, "resent": sent + more - size}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mib", default="256,1024", help="file sizes in MiB (default 256,1024)")
    parser.add_argument("--runs", type=int, default=3, help="uploads per size and way (default 3)")
    parser.add_argument("--big-bytes", type=int, default=3 * 1000**3,
                        help="one resumable upload of this size at the end (default 3 * 1000**3; 0: none)")
    parser.add_argument("--cut-mib", type=int, default=1024, help="the size of the cut uploads (default 1024)")
    parser.add_argument("--no-s3", action="store_true", help="leave out the cut straight to gunicorn on S3")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) * MIB for s in args.sizes_mib.split(",")]
    machine, busy_before = ingest.prepare()
    limit = max(sizes + [args.big_bytes, args.cut_mib * MIB, 3 * 1000**3])
    common = dict(DJANGO_BEHIND_PROXY="true", MEMPORTAL_UPLOAD_TEMP_DIR=VAR / "tmp", MEMPORTAL_DB_CONN_MAX_AGE=0,
                  MEMPORTAL_MAX_UPLOAD_BYTES=limit, MEMPORTAL_MAX_REQUEST_BYTES=limit + MIB,
                  MEMPORTAL_UPLOADS_IN_FLIGHT_PER_USER=100)
    env = benchlib.bench_env(DB_NAME, VAR, MEMPORTAL_STORAGE="local", **common)
    targets, moto, results, cuts, big = [], None, [], [], None
    try:
        files = [(size, VAR / f"source-{size // MIB}.mp4") for size in sizes]
        digests = {size: nginxlib.Source(size, seed=b"resumable %d" % size).write(path) for size, path in files}
        benchlib.setup_database(DB_NAME, env)
        nginxlib.seed(env)
        local = ingest.Target("local", env, baseline=True)
        targets.append(local)
        benchlib.django_setup(env)
        from django.conf import settings

        chunk = settings.MEMPORTAL_UPLOAD_CHUNK_BYTES
        session, team = nginxlib.sign_in(f"http://127.0.0.1:{local.port}")
        cookie, csrf = nginxlib.cookie_header(session), session.cookies["csrftoken"]
        headers = {"Cookie": cookie, "X-CSRFToken": csrf}
        front, media = ("127.0.0.1", local.port), VAR / "media"
        print(f"gunicorn: {' '.join(local.argv)}; chunk {chunk} bytes", flush=True)

        def resumable(path, size, sha256, name="resumable"):
            answer, figures = ingest.observed(local, size, lambda: tus_upload(front, headers, team, path, size,
                                                                              chunk, f"{name}.mp4"))
            check_stored(answer, size, sha256, media)
            return {**figures, "target": "resumable"}

        for run in range(args.runs):
            for size, path in files:
                results.append({**ingest.measure(local, path, size, digests[size], cookie, csrf, None, baseline=True),
                                "target": "nginx write"})
                results.append({**ingest.measure(local, path, size, digests[size], cookie, csrf, None),
                                "target": "form"})
                results.append(resumable(path, size, digests[size]))
                print(f"run {run + 1}, {size // MIB} MiB: " + ", ".join(
                    f"{r['target']} {r['mib_s']:.0f} MiB/s" for r in results[-3:]), flush=True)
        for _, path in files:
            path.unlink()
        if args.big_bytes:
            path = VAR / "source-big.mp4"
            big = resumable(path, args.big_bytes, nginxlib.Source(args.big_bytes, seed=b"resumable big").write(path))
            path.unlink()
            print(f"{args.big_bytes} bytes resumable: {big['mib_s']:.0f} MiB/s", flush=True)

        size, path = args.cut_mib * MIB, VAR / "source-cut.mp4"
        sha256 = nginxlib.Source(size, seed=b"resumable cut").write(path)
        ways = [("through nginx (shipped)", front, None), ("straight to gunicorn, local storage", ("127.0.0.1", local.gport), None)]
        if not args.no_s3:
            moto, s3_env, client = ingest.start_s3(DB_NAME, common)
            targets.append(ingest.Target("S3", s3_env))
            ways.append(("straight to gunicorn, S3 storage (moto)", ("127.0.0.1", targets[-1].gport), (client, BUCKET)))
        for way, addr, s3 in ways:
            answer = cut_at_half(addr, headers, team, path, size, chunk, "cut.mp4")
            check_stored(answer, size, sha256, media, s3)
            cuts.append({"way": way, "bytes": size, "chunk": chunk, "cut_at": answer["cut_at"],
                         "resumed_at": answer["resumed_at"], "resent_bytes": answer["resent"],
                         "seconds": round(answer["seconds"], 2)})
            print(f"cut, {way}: {answer['resent'] / MIB:.2f} MiB sent again", flush=True)
        path.unlink()
    finally:
        for target in targets:
            target.stop()
        if moto:
            benchlib.stop(moto)
        benchlib.run(["dropdb", *benchlib.PG, "--if-exists", "--force", DB_NAME], check=False)
        shutil.rmtree(VAR, ignore_errors=True)

    rows = []
    for size in sizes:
        base = ingest.summary(results, "nginx write", size, None)["median_mib_s"]
        rows += [ingest.summary(results, name, size, base) for name in ("nginx write", "form", "resumable")]
    figures = {"machine": machine, "busy_cores_before": round(busy_before, 2), "runs": args.runs, "chunk": chunk,
               "rows": rows, "big": big, "cuts": cuts, "gunicorn": " ".join(local.argv)}
    lines = [machine, f"{busy_before:.2f} cores busy in the 2 s before; {args.runs} runs per size and way; "
                      f"chunk {chunk / MIB:g} MiB", ""]
    lines += ingest.summary_table(rows, first="way", client="client")
    if big:
        lines.append(f"\n{args.big_bytes} bytes resumable: stored whole in {big['seconds']:.1f} s "
                     f"({big['mib_s']:.0f} MiB/s), gunicorn {big['gunicorn_cpu']:.1f} CPU s, worker peak RSS - idle "
                     f"{big['peak_rss_minus_idle_mib']:.1f} MiB, peak on disk {big['peak_disk_mib']:.0f} MiB")
    lines += ["", f"Cut at 50 % ({args.cut_mib} MiB, chunk {chunk / MIB:g} MiB):"]
    lines += benchlib.table(["way", "cut at (MiB)", "resumed at (MiB)", "sent again (MiB)", "of a chunk", "seconds"],
                            [[c["way"], f"{c['cut_at'] / MIB:.1f}", f"{c['resumed_at'] / MIB:.1f}",
                              f"{c['resent_bytes'] / MIB:.2f}", f"{c['resent_bytes'] / c['chunk']:.0%}", c["seconds"]]
                             for c in cuts])
    benchlib.report(figures, lines, args.json)


if __name__ == "__main__":
    sys.exit(main())
