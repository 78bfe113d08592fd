"""nginx in front of gunicorn, end to end on loopback: the checks CI runs (.ci/run), and figures.

    .venv/bin/python bench/nginx_check.py                        # CI: a 1 GiB upload at a 1 GiB limit
    .venv/bin/python bench/nginx_check.py --buffering on --slow-uploads 20 --direct   # measurements

deploy/nginx/memportal.conf rendered for loopback (bench/nginxlib.py) in front of the Procfile's
`web` line (DJANGO_BEHIND_PROXY=true, PostgreSQL database memportal_nginx_check, files under
var/nginx-check/, all removed at the end), MEMPORTAL_MAX_UPLOAD_BYTES = --limit-mib (default
1024; the request limit and the upload location's client_max_body_size are that + 1 MiB).
demo-member (seed_demo) signs in through nginx, then:

- the banner: `Server: nginx` and no version through nginx (gunicorn's own says gunicorn);
- an upload of exactly the limit is stored whole (size and sha256 of the stored file), one copy;
- an upload over the limit is refused with at most the limit + 64 MiB on disk anywhere (the open
  files of nginx and gunicorn, deleted ones included, and var/…/media, sampled every 20 ms);
  a declared length over client_max_body_size gets nginx's 413 with nothing written and nothing
  sent to gunicorn; a chunked body and an anonymous one are refused by the portal before reading;
- a resumed upload through /uploads/tus/ (bench/nginx_resumable.py): --resumable-mib in the portal's
  chunks (8 MiB), the chunk after the half cut off half-way; the offset is then the last whole chunk,
  the file is stored whole, under one chunk is sent again, and a chunk declared over the location's
  client_max_body_size gets nginx's 413;
- no log line of nginx holds a callback path (a callback, one too large, a malformed request,
  and one while gunicorn is down);
- --slow connections (a third each: request heads sent a byte at a time, silent connections,
  anonymous uploads trickling their body) held against nginx for --hold s do not stall GET
  /healthz through nginx (each answer within 2 s).
--slow-uploads N also holds N signed-in uploads trickling their bodies (the price of
proxy_request_buffering off), --direct the same slow connections against gunicorn itself.
Exits 1 on any failed check; prints the figures and "checks: N passed, M failed".
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import benchlib
import nginx_resumable
import nginxlib
from benchlib import ROOT
from nginxlib import MIB, Source, post_stream

DB_NAME = "memportal_nginx_check"
VAR = ROOT / "var" / "nginx-check"
SLACK = 64 * MIB
CHUNK = 8 * MIB  # the portal's default MEMPORTAL_UPLOAD_CHUNK_BYTES


class Checks:
    def __init__(self):
        self.results = []

    def __call__(self, name, ok, figure=""):
        self.results.append((name, bool(ok), figure))
        print(f"{'PASS' if ok else 'FAIL'}  {name}{f': {figure}' if figure else ''}", flush=True)
        return ok


def upstream_connections(port):
    """Established connections gunicorn holds on its port (each a request it serves or reads), from /proc/net/tcp."""
    rows = [line.split() for line in open("/proc/net/tcp").read().splitlines()[1:]]
    return sum(1 for row in rows if row[3] == "01" and int(row[1].rsplit(":", 1)[1], 16) == port)


class SlowClients:
    """Connections that hold on: kinds "head" (a request head sent a byte every `every` s), "silent"
    (connected, nothing sent), "body" (the complete head of an upload declaring `declared` bytes, its
    body then sent a byte every `every` s, or with `sessions` a signed-in upload's, 4 KiB every
    `every` s). Counts the connections the server has closed, and the answers 429."""

    def __init__(self, addr, kinds, *, sessions=(), every=0.5, declared=1000 * MIB):
        """`sessions`: (cookie header, upload form) per signed-in "body", taken in turn."""
        self.addr, self.kinds, self.sessions, self.every = addr, kinds, list(sessions), every
        self.declared = declared
        self.step = 4096 if sessions else 1
        self.socks, self.closed, self.refused, self._stop = [], 0, 0, threading.Event()

    def __enter__(self):
        for index, kind in enumerate(self.kinds):
            sock = socket.create_connection(self.addr, timeout=10)
            if kind == "body":
                headers = [f"Host: {self.addr[0]}:{self.addr[1]}", f"Content-Length: {self.declared}"]
                if self.sessions:
                    cookie, (content_type, head, _) = self.sessions[index % len(self.sessions)]
                    headers += [f"Cookie: {cookie}", f"Content-Type: {content_type}"]
                else:
                    head = b"x"
                    headers.append("Content-Type: application/octet-stream")
                sock.sendall(("POST /videos/upload/ HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode() + head)
                pending = self.declared - len(head)
            elif kind == "head":
                pending = f"GET /healthz HTTP/1.1\r\nHost: {self.addr[0]}\r\nX-Slow: {'a' * 4000}".encode()
            else:
                pending = b""
            sock.setblocking(False)
            self.socks.append([sock, pending, True])
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def run(self):
        while not self._stop.wait(self.every):
            for entry in self.socks:
                sock, pending, alive = entry
                if not alive:
                    continue
                try:
                    peek = sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                    if peek.startswith(b"HTTP/1.1 429"):
                        self.refused += 1
                    if peek == b"" or peek.startswith(b"HTTP/"):  # answered: the server is done with it
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                except OSError:
                    entry[2] = False
                    self.closed += 1
                    continue
                if pending:
                    try:
                        if isinstance(pending, int):
                            entry[1] = pending - sock.send(b"y" * min(self.step, pending))
                        else:
                            entry[1] = pending[sock.send(pending[:self.step]):]
                    except BlockingIOError:
                        pass
                    except OSError:
                        entry[2] = False
                        self.closed += 1

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for sock, _, _ in self.socks:
            sock.close()


def probe_healthz(addr, seconds, upstream_port=None, every=0.1):
    """GET /healthz every `every` s for `seconds` s: latencies (s), failures, most upstream connections."""
    latencies, failures, most, deadline = [], 0, 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            status = nginxlib.get(addr, "/healthz", timeout=60)[0]
            failures += status != 200
        except OSError:
            failures += 1
        latencies.append(time.monotonic() - t0)
        if upstream_port:
            most = max(most, upstream_connections(upstream_port))
        time.sleep(max(every - (time.monotonic() - t0), 0))
    return latencies, failures, most


def lat(latencies):
    return (f"{len(latencies)} probes, p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms")


def upload(addr, cookie, csrf, team, source, *, name="check.mp4", **kwargs):
    """The upload form with `source` as its file, through post_stream."""
    content_type, head, tail = nginxlib.upload_form(csrf, team, name)

    def parts():
        yield head
        yield from source.blocks()
        yield tail
    return post_stream(addr, "/videos/upload/", parts(), len(head) + source.size + len(tail),
                       [f"Cookie: {cookie}", f"Content-Type: {content_type}"], **kwargs)


def measured(nginx, gunicorn, action):
    """Runs `action`; returns its result, the peak bytes on disk beyond those before, and the bytes
    nginx and gunicorn wrote into files meanwhile."""
    pids_n, pids_g = nginxlib.pids_of(nginx), nginxlib.pids_of(gunicorn)
    before = nginxlib.write_bytes(pids_n), nginxlib.write_bytes(pids_g)
    with nginxlib.DiskSampler(pids_n + pids_g, VAR, [VAR / "media", VAR / "tmp"]) as disk:
        result = action()
    after = nginxlib.write_bytes(pids_n), nginxlib.write_bytes(pids_g)
    return result, disk.extra, after[0] - before[0], after[1] - before[1]


def log_lines(path, text):
    try:
        return sum(text in line for line in path.read_text(errors="replace").splitlines())
    except OSError:
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit-mib", type=int, default=1024, help="MEMPORTAL_MAX_UPLOAD_BYTES in MiB (default 1024)")
    parser.add_argument("--buffering", choices=["on", "off"], help="the upload's proxy_request_buffering "
                        "(default: as deploy/nginx/memportal.conf says)")
    parser.add_argument("--resumable-mib", type=int, default=64, help="the resumed upload's size (default 64)")
    parser.add_argument("--slow", type=int, default=30, help="slow connections held against nginx (default 30)")
    parser.add_argument("--hold", type=float, default=10, help="seconds they are held (default 10)")
    parser.add_argument("--slow-uploads", type=int, default=0, help="also hold N signed-in slow uploads")
    parser.add_argument("--direct", action="store_true", help="also hold the slow connections against gunicorn")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON at the end")
    parser.add_argument("--keep", action="store_true", help="keep var/nginx-check/ (logs) and the database")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the finally below still cleans up
    if not os.path.exists(nginxlib.NGINX):
        raise SystemExit("nginx is needed: apt-get install nginx-light (or nginx)")
    started = time.monotonic()
    check, figures = Checks(), {}
    machine, busy = f"{benchlib.machine()}, {nginxlib.version()}", benchlib.busy_cores(1)
    print(f"{machine}; {busy:.2f} cores busy in the second before", flush=True)
    figures.update(machine=machine, busy_cores_before=round(busy, 2))

    limit = args.limit_mib * MIB
    shutil.rmtree(VAR, ignore_errors=True)
    env = benchlib.bench_env(DB_NAME, VAR, DJANGO_BEHIND_PROXY="true", MEMPORTAL_STORAGE="local",
                             MEMPORTAL_UPLOAD_TEMP_DIR=VAR / "tmp", MEMPORTAL_MAX_UPLOAD_BYTES=limit,
                             MEMPORTAL_MAX_REQUEST_BYTES=limit + MIB, MEMPORTAL_DB_CONN_MAX_AGE=0,
                             MEMPORTAL_UPLOAD_CHUNK_BYTES=CHUNK,  # the /uploads/tus/ location's size
                             DJANGO_SECURE_HSTS_SECONDS=60)  # HSTS is sent only to a request the portal sees as https
    benchlib.setup_database(DB_NAME, env)
    port, redirect_port, gport = nginxlib.free_port(), nginxlib.free_port(), nginxlib.free_port()
    front, back = ("127.0.0.1", port), ("127.0.0.1", gport)
    folder = nginxlib.render(VAR, port=port, redirect_port=redirect_port, upstream_port=gport,
                             max_request=limit + MIB, buffering=args.buffering)
    buffering = args.buffering or ("off" if "proxy_request_buffering off" in nginxlib.CONF.read_text() else "on")
    figures["buffering"] = buffering
    gunicorn_log, gunicorn, nginx = VAR / "gunicorn.log", None, None
    try:
        gunicorn, argv = nginxlib.start_gunicorn(env, gport, gunicorn_log)
        nginx = nginxlib.start_nginx(folder, port)
        print(f"gunicorn: {' '.join(argv)}\nnginx: {nginxlib.NGINX} -p {folder}/ (upload buffering {buffering})",
              flush=True)
        benchlib.django_setup(env)
        from uploads.models import Video

        # The banner.
        status, headers, body = nginxlib.get(front, "/healthz")
        direct = nginxlib.get(back, "/healthz")[1].get("server")
        check("GET /healthz through nginx answers ok", status == 200 and body == b"ok", status)
        check("the Server header through nginx is nginx's, no version, not gunicorn's",
              headers.get("server") == ["nginx"], f"client sees Server: {headers.get('server')}, "
                                                  f"gunicorn itself sends {direct}")
        rid = headers.get("x-request-id", ["none"])[0]
        check("the portal's request id is nginx's (X-Request-ID)",
              f"rid={rid}" in (folder / "logs" / "memportal.access.log").read_text(), rid)
        # The TLS lines as shipped (a self-signed certificate in the placeholders' place).
        tls_port = nginxlib.free_port()
        tls_folder = nginxlib.render(VAR, port=tls_port, redirect_port=nginxlib.free_port(), upstream_port=gport,
                                     tls=nginxlib.self_signed(VAR / "tls"), name="nginx-tls")
        tls_nginx = nginxlib.start_nginx(tls_folder, tls_port)
        try:
            status, over_tls, _ = nginxlib.get(("127.0.0.1", tls_port), "/healthz", tls=True)
        finally:
            benchlib.stop(tls_nginx)
        forged = nginxlib.get(front, "/healthz", headers={"X-Forwarded-Proto": "https"})[1]
        hsts = "strict-transport-security"
        check("https through nginx is https to the portal (X-Forwarded-Proto); a client's own header over http "
              "is replaced", status == 200 and hsts in over_tls and hsts not in headers and hsts not in forged,
              f"HSTS over https: {over_tls.get(hsts)}, over http with a forged X-Forwarded-Proto: {forged.get(hsts)}")
        status, headers, _ = nginxlib.get(("127.0.0.1", redirect_port), "/videos/")
        check("plain http only redirects to https", status == 301 and headers.get("location", [""])[0]
              == "https://127.0.0.1/videos/", f"{status} {headers.get('location')}")

        nginxlib.seed(env)
        session, team = nginxlib.sign_in(f"http://127.0.0.1:{port}")
        cookie, csrf = nginxlib.cookie_header(session), session.cookies["csrftoken"]

        # An upload of exactly the limit.
        source = Source(limit)
        workers = nginxlib.pids_of(gunicorn)[1:]
        nginxlib.reset_peak_rss(workers)
        idle = {pid: nginxlib.status_kib(pid, "VmRSS") for pid in workers}
        answer, disk, wrote_n, wrote_g = measured(nginx, gunicorn, lambda: upload(front, cookie, csrf, team, source))
        rss = max(nginxlib.status_kib(pid, "VmHWM") - idle[pid] for pid in workers) / 1024
        video = Video.objects.order_by("-created_at").first()
        stored = VAR / "media" / video.file.name if video else None
        ok = (answer["status"] == 302 and answer["headers"].get("location") == "/videos/" and video is not None
              and video.size == limit and video.sha256 == source.sha256.hexdigest()
              and stored.stat().st_size == limit and nginxlib.sha256_file(stored) == video.sha256)
        rate = limit / MIB / answer["seconds"]
        figures["upload"] = {"bytes": limit, "seconds": round(answer["seconds"], 2), "mib_s": round(rate),
                             "peak_disk_mib": round(disk / MIB, 1), "nginx_wrote_mib": round(wrote_n / MIB, 1),
                             "gunicorn_wrote_mib": round(wrote_g / MIB, 1),
                             "worker_peak_rss_minus_idle_mib": round(rss, 1)}
        check(f"an upload of exactly the limit ({args.limit_mib} MiB) is stored whole (size, sha256)", ok,
              f"{answer['status']} in {answer['seconds']:.1f} s ({rate:.0f} MiB/s)")
        check("it is on disk once (peak ≤ its size + 64 MiB)", disk <= limit + SLACK,
              f"peak {disk / MIB:.0f} MiB on disk; written by nginx {wrote_n / MIB:.0f} MiB, "
              f"by gunicorn {wrote_g / MIB:.0f} MiB; gunicorn worker peak RSS - idle {rss:.1f} MiB")
        token_path = video.callback_path if video else "/callbacks/memories/none/"
        count = Video.objects.count()

        # Over the limit, inside the request limit: the upload handler refuses the file.
        source = Source(limit + MIB // 2, seed=b"over")
        answer, disk, wrote_n, wrote_g = measured(nginx, gunicorn, lambda: upload(front, cookie, csrf, team, source))
        leftovers = list((VAR / "tmp").iterdir())
        figures["over_limit"] = {"bytes": source.size, "status": answer["status"],
                                 "peak_disk_mib": round(disk / MIB, 1), "nginx_wrote_mib": round(wrote_n / MIB, 1),
                                 "gunicorn_wrote_mib": round(wrote_g / MIB, 1)}
        check("a file of the limit + 512 KiB is refused (the upload handler), nothing stored or left",
              answer["status"] == 302 and answer["headers"].get("location") == "/videos/upload/"
              and Video.objects.count() == count and not leftovers, f"{answer['status']}, leftovers {leftovers}")
        check("at most the limit + 64 MiB was on disk meanwhile", disk <= limit + SLACK,
              f"peak {disk / MIB:.0f} MiB (limit {args.limit_mib} MiB); written by nginx {wrote_n / MIB:.0f} MiB, "
              f"by gunicorn {wrote_g / MIB:.0f} MiB")

        # A declared length over client_max_body_size: nginx's 413, nothing written or passed on.
        posts = log_lines(gunicorn_log, "POST /videos/upload/")
        source = Source(limit + limit // 2, seed=b"declared")
        answer, disk, wrote_n, wrote_g = measured(nginx, gunicorn, lambda: upload(front, cookie, csrf, team, source))
        passed_on = log_lines(gunicorn_log, "POST /videos/upload/") - posts
        figures["declared_over"] = {"status": answer["status"], "sent_before_answer": answer["sent"],
                                    "peak_disk_bytes": disk, "reached_gunicorn": passed_on}
        check("a declared length over client_max_body_size gets nginx's 413 before the body, nothing written",
              answer["status"] == 413 and b"<center>nginx</center>" in answer["body"] and disk == 0
              and passed_on == 0, f"{answer['status']} after {answer['sent']} body bytes sent, {disk} bytes "
                                  f"on disk, {passed_on} requests reached gunicorn")

        # A chunked body (no declared length) over the limit, and an anonymous one.
        source = Source(limit + limit // 2, seed=b"chunked")
        answer, disk, wrote_n, wrote_g = measured(nginx, gunicorn, lambda: upload(
            front, cookie, csrf, team, source, chunked=True))
        figures["chunked_over"] = {"status": answer["status"], "sent_before_answer": answer["sent"],
                                   "peak_disk_bytes": disk}
        check("a chunked upload over the limit is refused with at most the limit + 64 MiB written",
              answer["status"] == 413 and disk <= limit + SLACK and Video.objects.count() == count,
              f"{answer['status']} after {answer['sent'] / MIB:.1f} MiB sent, {disk / MIB:.1f} MiB on disk")
        source = Source(limit, seed=b"anonymous")
        answer, disk, _, _ = measured(nginx, gunicorn, lambda: upload(front, "", "x", team, source))
        check("an anonymous upload is refused from its head (Sign in first), nothing written",
              answer["status"] == 413 and b"Sign in first" in answer["body"] and disk == 0,
              f"{answer['status']} after {answer['sent'] / MIB:.1f} MiB sent, {disk} bytes on disk")

        # A resumed upload through the resumable location.
        resumable = VAR / "resumable.mp4"
        Source(args.resumable_mib * MIB, seed=b"resumable").write(resumable)
        nginx_resumable.resumed_upload(front, cookie, csrf, team, resumable, CHUNK, VAR / "media", gunicorn_log,
                                       log_lines, check, figures)
        resumable.unlink()

        # Slow and half-open connections against nginx.
        kinds = [("head", "silent", "body")[i % 3] for i in range(args.slow)]
        with SlowClients(front, kinds, declared=limit) as slow:
            time.sleep(1)
            latencies, failures, most = probe_healthz(front, args.hold, gport)
        figures["slow_connections"] = {"count": args.slow, "hold_s": args.hold, "p50_ms": round(
            statistics.median(latencies) * 1000), "max_ms": round(max(latencies) * 1000), "failures": failures,
            "upstream_connections_max": most, "closed_by_nginx": slow.closed}
        check(f"{args.slow} slow connections held against nginx ({args.hold:.0f} s) do not stall GET /healthz",
              max(latencies) < 2 and failures == 0,
              f"{lat(latencies)}, gunicorn held at most {most} connections, nginx answered or closed {slow.closed}")
        if args.direct:
            with SlowClients(back, kinds, declared=limit) as slow:
                time.sleep(1)
                latencies, failures, most = probe_healthz(back, args.hold, gport)
            figures["slow_connections_direct"] = {"p50_ms": round(statistics.median(latencies) * 1000),
                                                  "max_ms": round(max(latencies) * 1000), "failures": failures}
            print(f"for comparison, the same {args.slow} held against gunicorn itself: {lat(latencies)}, "
                  f"{failures} failed", flush=True)
        # One session's uploads at once: at most 4 (limit_conn), the 5th and 6th answered 429 at once.
        form = nginxlib.upload_form(csrf, team, "slow.mp4")
        with SlowClients(front, ["body"] * 6, sessions=[(cookie, form)], every=0.25,
                         declared=limit) as slow:
            time.sleep(1.5)
            latencies, failures, most = probe_healthz(front, 3, gport)
        time.sleep(1)
        leftovers = list((VAR / "tmp").iterdir())
        figures["one_session_uploads"] = {"held": most, "refused_429": slow.refused,
                                          "max_ms": round(max(latencies) * 1000)}
        check("one session holds at most 4 uploads at once (the 5th and 6th: 429), and nothing is left when they "
              "end unfinished", slow.refused == 2 and most <= 4 and failures == 0 and not leftovers,
              f"gunicorn held {most}, 429 answers {slow.refused}, /healthz max {max(latencies) * 1000:.0f} ms, "
              f"leftovers {leftovers}")
        if args.slow_uploads:
            sessions = []
            for _ in range(args.slow_uploads):
                other, _ = nginxlib.sign_in(f"http://127.0.0.1:{port}")
                sessions.append((nginxlib.cookie_header(other),
                                 nginxlib.upload_form(other.cookies["csrftoken"], team, "slow.mp4")))
            for name, addr in (("nginx", front), ("gunicorn", back)) if args.direct else (("nginx", front),):
                with SlowClients(addr, ["body"] * args.slow_uploads, sessions=sessions, every=0.25,
                                 declared=limit):
                    time.sleep(1)
                    latencies, failures, most = probe_healthz(addr, args.hold, gport)
                time.sleep(2)
                leftovers = list((VAR / "tmp").iterdir())
                figures[f"slow_uploads_{name}"] = {"count": args.slow_uploads, "p50_ms": round(
                    statistics.median(latencies) * 1000), "max_ms": round(max(latencies) * 1000),
                    "failures": failures, "upstream_connections_max": most, "tmp_leftovers": len(leftovers)}
                print(f"{args.slow_uploads} signed-in uploads (one session each) trickling 16 KiB/s, through {name} "
                      f"(buffering {buffering}): /healthz {lat(latencies)}, {failures} failed; gunicorn held at "
                      f"most {most} connections; {len(leftovers)} temporary files left 2 s after they closed",
                      flush=True)

        # No callback path in nginx's logs.
        benchlib.run(["curl", "-sS", "-o", "/dev/null", "-H", "Content-Type: application/json", "--data",
                      '{"videoNo": "VI1", "status": "PARSE"}', f"http://127.0.0.1:{port}{token_path}"])
        big = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:", "--data-binary",
                              "@-", f"http://127.0.0.1:{port}{token_path}"], input=b"x" * 100_000,
                             capture_output=True).stdout.decode()
        with socket.create_connection(front) as sock:
            sock.sendall(f"POST {token_path} HTTP/1.1\r\nHost: x\r\nBroken header\r\n\r\n".encode())
            sock.recv(4096)
        benchlib.stop(gunicorn)
        down = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--data", "{}",
                               f"http://127.0.0.1:{port}{token_path}"], capture_output=True, text=True).stdout
        token = token_path.rstrip("/").rsplit("/", 1)[1]
        logs = sorted((folder / "logs").iterdir())
        leaked = [p.name for p in logs if token in p.read_text(errors="replace")]
        callback_lines = log_lines(folder / "logs" / "memportal.access.log", "/callbacks/")
        check("no nginx log holds a callback path (a callback, a 100 kB one, a malformed one, one while gunicorn "
              "is down)", not leaked and big == "413" and down == "502" and callback_lines >= 4,
              f"too large: {big}, gunicorn down: {down}; {callback_lines} callback lines logged without their "
              f"path; leaked into {leaked or 'none'}")
    finally:
        for proc in (nginx, gunicorn):
            if proc:
                benchlib.stop(proc)
        if not args.keep:
            benchlib.run(["dropdb", *benchlib.PG, "--if-exists", "--force", DB_NAME], check=False)
            shutil.rmtree(VAR, ignore_errors=True)

    failed = [name for name, ok, _ in check.results if not ok]
    figures["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(figures, indent=2))
    print(f"ran in {figures['seconds']:.0f} s\nchecks: {len(check.results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
