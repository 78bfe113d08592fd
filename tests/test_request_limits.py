"""Request bodies are judged before anything reads them (issue 10, finding 1): an anonymous
client cannot make the server parse or spool a body, and no request of a signed-in user may carry
more than MEMPORTAL_MAX_REQUEST_BYTES. Driven through Django's own WSGI handler with a body
stream that counts what was read from it (the test client would hand Django the whole body)."""

import io

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)
BOUNDARY = "memportalboundary"


class CountingInput(io.RawIOBase):
    def __init__(self, size):
        self.size, self.read_bytes = size, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b"x" * n
        self.read_bytes += n
        return n


def post(path, length, cookie="", declared=None, **extra):
    body = CountingInput(length)
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        "wsgi.url_scheme": "http", "wsgi.input": io.BufferedReader(body), "wsgi.errors": io.StringIO(),
        "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}",
        "CONTENT_LENGTH": str(length if declared is None else declared), "HTTP_COOKIE": cookie, **extra,
    }
    status = []
    response = WSGIHandler()(environ, lambda s, headers: status.append(s))
    content = b"".join(response).decode()
    return int(status[0].split()[0]), content, body.read_bytes


def session_cookie(client, user):
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def tmp_files():
    return sorted(p.name for p in settings.FILE_UPLOAD_TEMP_DIR.iterdir())


@pytest.mark.parametrize("path", ["/videos/upload/", "/accounts/login/", "/admin/login/", "/videos/"])
def test_an_anonymous_body_is_refused_before_a_byte_of_it_is_read(path):
    before = tmp_files()
    status, page, read = post(path, 40 * 1024**2)
    assert status == 413 and read == 0 and tmp_files() == before
    assert "Sign in first" in page


def test_an_anonymous_sign_in_form_is_still_read(client, member):
    response = client.post("/accounts/login/", {"username": member.username, "password": PASSWORD})
    assert response.status_code == 302


def test_a_signed_in_request_over_the_whole_request_limit_is_refused_unread(client, member, settings):
    settings.MEMPORTAL_MAX_REQUEST_BYTES = 5 * 1024**2
    status, page, read = post("/videos/upload/", 6 * 1024**2, cookie=session_cookie(client, member))
    assert status == 413 and read == 0
    assert "at most 5.0\xa0MB in all" in page


def test_a_body_without_a_declared_length_is_refused(client, member):
    status, _, read = post("/videos/upload/", 1024, cookie=session_cookie(client, member), declared="",
                           HTTP_TRANSFER_ENCODING="chunked")
    assert status == 413 and read == 0


def test_every_page_switches_off_browser_features_it_does_not_use(client, member):
    for path, signed_in in (("/accounts/login/", False), ("/videos/", True), ("/healthz", False)):
        if signed_in:
            client.force_login(member)
        policy = client.get(path).headers.get("Permissions-Policy", "")
        assert "camera=()" in policy and "microphone=()" in policy and "geolocation=()" in policy, path


@pytest.mark.parametrize(("behind_proxy", "expected"), [(True, "203.0.113.7"), (False, "10.0.0.2")])
def test_a_callbacks_address_is_the_clients_as_the_proxy_saw_it(processing, settings, behind_proxy, expected):
    from django.test import Client

    from uploads.models import CallbackRecord

    settings.MEMPORTAL_BEHIND_PROXY = behind_proxy
    Client(REMOTE_ADDR="10.0.0.2").post(
        processing.callback_path, data='{"videoNo": "%s", "status": "UNPARSE"}' % processing.video_no,
        content_type="application/json", HTTP_X_FORWARDED_FOR="198.51.100.66, 203.0.113.7")
    assert CallbackRecord.objects.get().remote_addr == expected  # never the address the client claimed
