"""A resumed upload through nginx's /uploads/tus/ location, for bench/nginx_check.py (CI).

The tus requests the upload page's script makes (uploads/tus.py): the upload created, half of it
sent in chunks of the portal's size, the next chunk cut off half-way (its connection closed), the
offset asked again (HEAD) and the rest sent from there. With the location buffered by nginx
(proxy_request_buffering on), the cut chunk never reaches gunicorn: the offset stays on the last
whole chunk, and what is sent again is less than one chunk. Also: a chunk declared larger than
the location's client_max_body_size gets nginx's 413, nothing passed on.
"""

import base64
import http.client
import socket
import time

import nginxlib
from nginxlib import MIB


def tus_request(addr, method, path, headers, body=b""):
    """(status, headers as a lower-case dict, body) of one tus request on a new connection."""
    conn = http.client.HTTPConnection(*addr, timeout=300)
    try:
        conn.request(method, path, body=body, headers={"Tus-Resumable": "1.0.0", **headers})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def cut_chunk(addr, path, offset, chunk, headers):
    """A PATCH of `chunk` whose connection is closed once half of it is sent."""
    sock = socket.create_connection(addr, timeout=30)
    lines = [f"PATCH {path} HTTP/1.1", f"Host: {addr[0]}:{addr[1]}", "Tus-Resumable: 1.0.0",
             f"Upload-Offset: {offset}", "Content-Type: application/offset+octet-stream",
             f"Content-Length: {len(chunk)}", *(f"{name}: {value}" for name, value in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + chunk[:len(chunk) // 2])
    time.sleep(0.5)
    sock.close()
    return len(chunk) // 2


def create(addr, headers, size, meta):
    """A tus upload of `size` bytes created (POST): (status, answer headers, body)."""
    return tus_request(addr, "POST", "/uploads/tus/", {
        **headers, "Upload-Length": str(size),
        "Upload-Metadata": ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())})


def send_chunks(addr, path, headers, read, offset, until, chunk):
    """PATCHes of `chunk` bytes (`read(offset, n)` gives them) from `offset` while it is below
    `until`, each at the offset the server answered: (offset, last answer's headers, bytes sent)."""
    sent, answer = 0, {}
    while offset < until:
        part = read(offset, chunk)
        status, answer, body = tus_request(addr, "PATCH", path, {
            **headers, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}, part)
        if status != 204:
            raise SystemExit(f"invalid run: a chunk at {offset} answered {status}: {body[:300]!r}")
        sent += len(part)
        offset = int(answer["upload-offset"])
    return offset, answer, sent


def resumed_upload(front, cookie, csrf, team, source_path, chunk, media, gunicorn_log, log_lines, check, figures):
    """The checks of a resumed upload of `source_path` in chunks of `chunk` bytes (stored under `media`)."""
    from uploads.models import Video

    size = source_path.stat().st_size
    headers = {"Cookie": cookie, "X-CSRFToken": csrf}
    status, answer, body = create(front, headers, size, {"filename": "resumed.mp4", **({"team": team} if team else {})})
    if status != 201:
        check("a resumable upload is created through nginx", False, f"{status} {body[:200]!r}")
        return
    path = answer["location"]
    patches_before = log_lines(gunicorn_log, "PATCH /uploads/tus/")
    data = source_path.read_bytes()
    read = lambda offset, n: data[offset:offset + n]  # noqa: E731
    started, sent, half = time.monotonic(), 0, size // 2

    offset, _, sent = send_chunks(front, path, headers, read, 0, half, chunk)
    sent += cut_chunk(front, path, offset, data[offset:offset + chunk], headers)
    time.sleep(0.5)
    status, answer, _ = tus_request(front, "HEAD", path, headers)
    resumed_at = int(answer.get("upload-offset", -1))
    check("after a chunk cut half-way, the offset through nginx is the last whole chunk (nginx passed no part of it)",
          status == 200 and resumed_at == offset, f"HEAD {status}, offset {resumed_at / MIB:.1f} MiB, "
                                                  f"{offset / MIB:.1f} MiB sent whole before the cut")
    offset, last, more = send_chunks(front, path, headers, read, resumed_at, size, chunk)
    sent += more
    seconds = time.monotonic() - started
    video = Video.objects.filter(original_name="resumed.mp4").first()
    stored = nginxlib.sha256_file(media / video.file.name) if video else None
    resent = sent - size
    patches = log_lines(gunicorn_log, "PATCH /uploads/tus/") - patches_before
    whole = -(-size // chunk)
    figures["resumed_upload"] = {"bytes": size, "chunk": chunk, "seconds": round(seconds, 2),
                                 "resent_bytes": resent, "patches_reaching_gunicorn": patches}
    check(f"a resumed upload through /uploads/tus/ ({size // MIB} MiB, cut at 50 %) is stored whole (size, sha256)",
          video is not None and video.size == size and stored == nginxlib.sha256_file(source_path)
          and last.get("memportal-video-url") == f"/videos/{video.pk}/",
          f"{size / MIB / seconds:.0f} MiB/s with the cut; video {video.pk if video else None}")
    check("the bytes sent again after the cut are under one chunk; the cut chunk never reached gunicorn",
          0 <= resent < chunk and patches == whole,
          f"{resent / MIB:.1f} MiB sent again (chunk {chunk / MIB:.0f} MiB); {patches} PATCHes reached gunicorn "
          f"for {whole} chunks")

    # A chunk declared over the location's client_max_body_size: nginx's 413 from the head.
    over = 10 * MIB
    status, _, body = tus_request(front, "PATCH", path, {
        **headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(over), "Expect": "100-continue"})
    passed_on = log_lines(gunicorn_log, "PATCH /uploads/tus/") - patches_before - patches
    check("a chunk declared over /uploads/tus/'s client_max_body_size gets nginx's 413, nothing passed on",
          status == 413 and b"<center>nginx</center>" in body and passed_on == 0, f"{status}, {passed_on} passed on")
