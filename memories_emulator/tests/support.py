"""What the emulator's own tests share: keys, paths, a fake clock, a callback receiver, clients.

Fixtures built on these are in ``conftest.py``. Plain HTTP with `requests`, the way the portal
talks to memories.ai; no Django.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

KEY = "sk-test-1"
OTHER_KEY = "sk-test-other-2"
REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE = REPO / "tests" / "data" / "sample-h264-aac.mp4"
UPLOAD = "/serve/api/video/upload"  # the older family ("v1.1")
LIST = "/serve/api/video/list_videos"
OLDER_DELETE = "/serve/api/video/delete_videos"
V1_UPLOAD = "/serve/api/v1/upload"  # the newer family ("v1")
V1_LIST = "/serve/api/v1/list_videos"
METADATA = "/serve/api/v1/get_metadata"
DELETE = "/serve/api/v1/delete_videos"


class FakeClock:
    def __init__(self, now: float = 1_754_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CallbackReceiver:
    """A tiny stand-in for the portal's callback endpoint."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, "body": json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def upload(emu, key=KEY, filename="clip.mp4", content=b"\x00" * 1000, content_type="video/mp4",
           data=None, path=UPLOAD, timeout=5):
    files = {"file": (filename, content, content_type)} if filename is not None else None
    headers = {"Authorization": key} if key is not None else {}
    return requests.post(emu.base_url + path, headers=headers, files=files, data=data or {"x": "1"},
                         timeout=timeout)


def api(emu, path, body, key=KEY, timeout=5):
    return requests.post(emu.base_url + path, headers={"Authorization": key}, json=body, timeout=timeout)


def metadata(emu, video_no, unique_id=None, key=KEY, timeout=5):
    """GET get_metadata; `unique_id` None leaves it out of the query."""
    params = {"video_no": video_no, **({"unique_id": unique_id} if unique_id is not None else {})}
    return requests.get(emu.base_url + METADATA, headers={"Authorization": key}, params=params, timeout=timeout)


def delete(emu, video_nos, unique_id=None, path=DELETE, key=KEY, timeout=5):
    """POST a bare JSON array of numbers; `unique_id` None leaves it out of the query."""
    params = {"unique_id": unique_id} if unique_id is not None else {}
    return requests.post(emu.base_url + path, headers={"Authorization": key, "Content-Type": "application/json"},
                         data=json.dumps(video_nos), params=params, timeout=timeout)
