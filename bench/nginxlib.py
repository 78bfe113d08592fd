"""nginx in front of gunicorn on loopback, for bench/nginx_check.py (CI) and bench/ingest.py.

deploy/nginx/memportal.conf is rendered as it is, but for the listen addresses (loopback; TLS
dropped, or kept with a self-signed certificate), the upstream's port, the log and temporary
paths and, when asked, the upload location's client_max_body_size and proxy_request_buffering and the
resumable location's client_max_body_size;
each change must find its line (the render stops otherwise, so the file and this script cannot
drift apart). nginx runs from Debian's package, without root if need be:
`nginx -p VAR -c VAR/nginx.conf -g 'daemon off; pid ...;'`. gunicorn runs the Procfile's `web`
line. The rest: sign-in, a raw HTTP/1.1 upload that stops sending when an answer comes early,
bytes on disk sampled (files nginx and gunicorn hold open, deleted ones included, and folders),
per-process write_bytes and VmHWM.
"""

import hashlib
import http.client
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import benchlib
from benchlib import ROOT, children

CONF = ROOT / "deploy" / "nginx" / "memportal.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MIB = 1024 * 1024
PASSWORD = "memportal-demo"  # uploads/management/commands/seed_demo.py
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def version():
    """ "nginx 1.22.1" """
    answer = subprocess.run([NGINX, "-v"], capture_output=True, text=True)
    return "nginx " + answer.stderr.strip().rsplit("/", 1)[-1]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sub(pattern, repl, text, count_expected=None, flags=re.M):
    new, n = re.subn(pattern, repl, text, flags=flags)
    if n == 0 or (count_expected is not None and n != count_expected):
        raise SystemExit(f"invalid run: deploy/nginx/memportal.conf no longer has {pattern!r} "
                         f"({n} found): update bench/nginxlib.py with it")
    return new


def render(var, *, port, redirect_port, upstream_port, max_request=None, buffering=None, max_chunk=None,
           extra_locations="", extra_http="", tls=None, name="nginx"):
    """deploy/nginx/memportal.conf for loopback, in var/<name>/; returns that folder. Plain http,
    or with `tls` (certificate, key) its TLS lines as they are but for the certificate's paths."""
    folder = Path(var) / name
    for sub in ("logs", "temp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    text = CONF.read_text()
    text = _sub(r"^(\s*)listen 443 ssl;", rf"\1listen 127.0.0.1:{port}{' ssl' if tls else ''};", text, 1)
    text = _sub(r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{redirect_port};", text, 1)
    text = _sub(r"^\s*listen \[::\]:\d+[^;]*;\n", "", text, 2)
    if tls:
        text = _sub(r"^(\s*ssl_certificate) +\S+;", rf"\1 {tls[0]};", text, 1)
        text = _sub(r"^(\s*ssl_certificate_key) +\S+;", rf"\1 {tls[1]};", text, 1)
    else:
        text = _sub(r"^\s*ssl_\w+ [^;]*;\n", "", text)
    text = _sub(r"^(\s*server 127\.0\.0\.1:)8000;", rf"\g<1>{upstream_port};", text, 1)
    text = _sub(r"/var/log/nginx/", f"{folder}/logs/", text)
    upload = re.search(r"location = /videos/upload/ \{.*?\n    \}", text, re.S)
    if not upload:
        raise SystemExit("invalid run: deploy/nginx/memportal.conf has no `location = /videos/upload/`")
    block = upload.group()
    if max_request is not None:
        block = _sub(r"client_max_body_size \d+;", f"client_max_body_size {max_request};", block, 1)
    if buffering is not None:
        block = _sub(r"proxy_request_buffering \w+;", f"proxy_request_buffering {buffering};", block, 1)
    text = text.replace(upload.group(), extra_locations + block)
    resumable = re.search(r"location /uploads/tus/ \{.*?\n    \}", text, re.S)
    if not resumable:
        raise SystemExit("invalid run: deploy/nginx/memportal.conf has no `location /uploads/tus/`")
    if max_chunk is not None:
        text = text.replace(resumable.group(), _sub(r"client_max_body_size \w+;", f"client_max_body_size {max_chunk};",
                                                     resumable.group(), 1))
    (folder / "memportal.conf").write_text(text)
    temp = folder / "temp"
    user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers would run as nobody, who cannot reach var/
    (folder / "nginx.conf").write_text(
        f"# Rendered by bench/nginxlib.py from deploy/nginx/memportal.conf; the frame Debian's nginx.conf gives it.\n"
        f"{user}worker_processes 1;\nerror_log {folder}/logs/error.log error;\n"
        f"events {{ worker_connections 1024; }}\n"
        f"http {{\n    sendfile on;\n    tcp_nopush on;\n    default_type application/octet-stream;\n"
        f"    access_log {folder}/logs/access.log;\n"
        + "".join(f"    {kind}_temp_path {temp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi",
                                                                         "uwsgi", "scgi"))
        + extra_http + f"    include {folder}/memportal.conf;\n}}\n")
    return folder


def self_signed(folder):
    """A certificate and key for 127.0.0.1 (the TLS lines' placeholders), made with cryptography."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"


def nginx_test(folder):
    done = subprocess.run([NGINX, "-t", "-q", "-p", f"{folder}/", "-c", f"{folder}/nginx.conf",
                           "-g", f"pid {folder}/nginx.pid;"], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"invalid run: nginx -t refused the rendered config:\n{done.stderr}")


def start_nginx(folder, port):
    nginx_test(folder)
    proc = benchlib.start([NGINX, "-p", f"{folder}/", "-c", f"{folder}/nginx.conf",
                           "-g", f"daemon off; pid {folder}/nginx.pid;"], None, folder / "logs" / "stderr.log",
                          start_new_session=True)
    wait_port(port, proc, folder / "logs" / "stderr.log")
    return proc


def start_gunicorn(env, port, log):
    """The Procfile's web line, ${NAME:-default} expanded with `env`."""
    env = {**env, "MEMPORTAL_BIND": f"127.0.0.1:{port}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    argv = benchlib.procfile_web_argv(env)
    return benchlib.start_web(argv, env, log), argv


def wait_port(port, proc, log, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    raise SystemExit(f"invalid run: nothing listens on {port}; see {log}:\n{Path(log).read_text()[-2000:]}")


def get(addr, path, headers=None, timeout=30, tls=False):
    """(status, headers as a dict of lists, body) of one GET on a new connection (tls: unverified)."""
    if tls:
        import ssl
        conn = http.client.HTTPSConnection(*addr, timeout=timeout, context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(*addr, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        found = {}
        for name, value in answer.getheaders():
            found.setdefault(name.lower(), []).append(value)
        return answer.status, found, answer.read()
    finally:
        conn.close()


def seed(env):
    """seed_demo's team, key and users (demo-member signs in below)."""
    benchlib.run([sys.executable, "manage.py", "seed_demo"], env={**env, "MEMPORTAL_DEMO_API_KEY": "bench-nginx-key"})


def sign_in(base):
    """demo-member signed in through `base`, a session of its own: (requests session, team id or None)."""
    import requests

    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=30).raise_for_status()
    answer = session.post(f"{base}/accounts/login/", allow_redirects=False, timeout=30, data={
        "username": "demo-member", "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    if answer.status_code != 302 or "sessionid" not in session.cookies:
        raise SystemExit(f"invalid run: sign-in answered {answer.status_code}")
    page = session.get(f"{base}/videos/upload/", timeout=30).text
    if 'id="upload-form"' not in page:
        raise SystemExit("invalid run: demo-member's upload page has no upload form")
    team = re.search(r'<select name="team"[^>]*>\s*<option value="(\d+)"', page, re.S)
    return session, team.group(1) if team else None  # one team: the form has no team field


def cookie_header(session):
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


class Source:
    """`size` bytes that open like an MP4 (ftyp), in 1 MiB blocks that all differ; sha256 as they go."""

    def __init__(self, size, seed=b"memportal"):
        self.size = size
        base = hashlib.shake_256(seed).digest(MIB)
        self.base = bytearray(MP4_HEAD + base[len(MP4_HEAD):])
        self.sha256 = hashlib.sha256()

    def blocks(self):
        sent, index = 0, 0
        while sent < self.size:
            block = self.base if index == 0 else bytearray(self.base)
            if index:
                block[0:8] = index.to_bytes(8, "big")
            block = bytes(block[:min(MIB, self.size - sent)])
            self.sha256.update(block)
            sent += len(block)
            index += 1
            yield block

    def write(self, path):
        with open(path, "wb") as out:
            for block in self.blocks():
                out.write(block)
        return self.sha256.hexdigest()


def upload_form(csrf, team, filename, title="nginx"):
    """The upload form's parts around the file: (content type, head, tail)."""
    boundary = "memportalbench" + os.urandom(8).hex()
    fields = "".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                     for name, value in (("csrfmiddlewaretoken", csrf), ("team", team), ("title", title))
                     if value is not None)
    head = (fields + f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()
    return f"multipart/form-data; boundary={boundary}", head, f"\r\n--{boundary}--\r\n".encode()


def post_stream(addr, path, body_parts, length, headers=(), *, chunked=False, declared=None, pace=None,
                timeout=3600):
    """POST on a raw HTTP/1.1 connection: `body_parts` (an iterable of bytes) sent as they come, or
    chunked; sending stops as soon as an answer arrives (a refusal before the body is read).
    Returns a dict: status, headers, body, sent (body bytes sent), seconds."""
    started = time.monotonic()
    sock = socket.create_connection(addr, timeout=timeout)
    lines = [f"POST {path} HTTP/1.1", f"Host: {addr[0]}:{addr[1]}", "Connection: close", *headers]
    lines.append("Transfer-Encoding: chunked" if chunked
                 else f"Content-Length: {length if declared is None else declared}")
    sent, early = 0, False
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        for part in body_parts:
            if select.select([sock], [], [], 0)[0]:
                early = True
                break
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            sent += len(part)
            if pace:
                time.sleep(pace)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        early = True
    try:
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        body = answer.read()
        status, found = answer.status, {k.lower(): v for k, v in answer.getheaders()}
    except (OSError, http.client.HTTPException) as error:
        status, found, body = None, {}, repr(error).encode()
    finally:
        sock.close()
    return {"status": status, "headers": found, "body": body, "sent": sent, "early": early,
            "seconds": time.monotonic() - started}


def pids_of(*procs):
    """Each process and its children (nginx's master and workers, gunicorn's arbiter and workers)."""
    return [pid for proc in procs for pid in (proc.pid, *children(proc.pid))]


def write_bytes(pids):
    """Bytes each process has written into files so far (/proc/<pid>/io write_bytes), summed."""
    total = 0
    for pid in pids:
        try:
            total += int(re.search(r"^write_bytes: (\d+)", Path(f"/proc/{pid}/io").read_text(), re.M).group(1))
        except (OSError, AttributeError):
            pass
    return total


def status_kib(pid, field):
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M).group(1))


def reset_peak_rss(pids):
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS from here on


class DiskSampler:
    """The bytes on disk of the upload's files, sampled every `every` s while it runs: the regular
    files the processes hold open under `root` (deleted ones too: nginx's body temp files are
    unlinked as soon as made) and every file under the folders `dirs`; each inode counted once."""

    def __init__(self, pids, root, dirs, every=0.02):
        self.pids, self.root, self.dirs, self.every = pids, str(root), [Path(d) for d in dirs], every
        self.peak = self.samples = 0
        self._stop = threading.Event()

    def sample(self):
        seen = {}
        for pid in self.pids:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith(self.root) and not target.endswith(".log"):  # not the logs
                        info = os.stat(f"/proc/{pid}/fd/{fd}")
                        seen[(info.st_dev, info.st_ino)] = info.st_blocks * 512
                except OSError:
                    pass
        for folder in self.dirs:
            for path in folder.rglob("*") if folder.exists() else ():
                try:
                    info = path.lstat()
                except OSError:
                    continue
                if path.is_file():
                    seen[(info.st_dev, info.st_ino)] = info.st_blocks * 512
        return sum(seen.values())

    def run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self.samples += 1
            self._stop.wait(self.every)

    def __enter__(self):
        self.base = self.sample()
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())
        self.extra = max(self.peak - self.base, 0)  # peak bytes on disk beyond what was there before


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()
