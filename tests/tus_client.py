"""Raw tus requests for the tests (tests/test_tus*.py): through Django's test client, by the
protocol's rules, and over real HTTP to a gunicorn the test starts (tests/test_tus_live.py)."""

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from .conftest import ROOT, wait_until, worker_env

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK_TYPE = "application/offset+octet-stream"
MIB = 1024 * 1024
CSRF = "tustests" * 4  # a CSRF secret of the right form (32 letters): cookie and header agree


def metadata(**values):
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
                    for key, value in values.items())


def create(client, name="clip.mp4", length=1000, headers=None, **meta):
    return client.post("/uploads/tus/", headers={**TUS, "Upload-Length": str(length),
                                                 "Upload-Metadata": metadata(filename=name, **meta), **(headers or {})})


def patch(client, url, offset, data, headers=None):
    return client.generic("PATCH", url, data, content_type=CHUNK_TYPE,
                          headers={**TUS, "Upload-Offset": str(offset), **(headers or {})})


def head(client, url):
    return client.head(url, headers=TUS)


def send_in_chunks(client, url, content, chunk, start=0):
    """PATCH `content` from `start` in chunks; the last answer."""
    response = None
    for offset in range(start, len(content), chunk):
        response = patch(client, url, offset, content[offset:offset + chunk])
        assert response.status_code == 204, (response.status_code, response.content)
        assert int(response["Upload-Offset"]) == min(offset + chunk, len(content))
    return response


class Portal:
    """A real web process (gunicorn, the Procfile's worker class) on a loopback port, on the
    test's database and storage; killed with SIGKILL as a crash would, and started again."""

    def __init__(self, port, log_dir, **env):
        self.port, self.log_dir, self.env, self.proc, self.starts = port, Path(log_dir), env, None, 0
        self.url = f"http://127.0.0.1:{port}"

    def start(self):
        self.starts += 1
        env = worker_env(**self.env)
        self.log = open(self.log_dir / f"gunicorn-{self.port}-{self.starts}.log", "w")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "memportal.wsgi", "--bind", f"127.0.0.1:{self.port}",
             "--worker-class", "gthread", "--workers", "1", "--threads", "4", "--timeout", "120"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

        def answers():
            try:
                return requests.options(f"{self.url}/uploads/tus/", timeout=2).status_code == 204
            except requests.RequestException:
                return False
        wait_until(answers, timeout=30, message="gunicorn answering")
        return self

    def kill(self):
        """SIGKILL to the master and its worker: no request finishes, nothing is cleaned up."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.log.close()

    def output(self):
        return "".join(path.read_text(errors="replace") for path in sorted(self.log_dir.glob(f"gunicorn-{self.port}-*")))


def signed_in_headers(client, user):
    """Headers a browser of a signed-in user sends to another process of the portal: its
    session cookie, the CSRF cookie and the same token in X-CSRFToken."""
    client.force_login(user)
    session = client.cookies["sessionid"].value
    return {"Cookie": f"sessionid={session}; csrftoken={CSRF}", "X-CSRFToken": CSRF}
