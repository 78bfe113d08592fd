"""In a real browser: forgetting a password and setting a new one through the mailed link, and the
page a locked-out sign-in gets (issue 10)."""

import re

import pytest
from django.core import mail

from .browser import sign_in
from .conftest import PASSWORD, run_worker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_forgot_password_mail_link_new_password_sign_in(browser_page, live_server, member):
    member.email = "mia@example.com"
    member.save()
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/")
    page.click("text=Forgot your password?")
    page.fill("#id_email", "mia@example.com")
    page.click("button:has-text('Send me the link')")
    assert "Check your mail" in page.inner_text("main")
    run_worker("default")
    path = re.search(r"/accounts/reset/\S+/", mail.outbox[0].body).group(0)
    page.goto(live_server.url + path)
    page.fill("#id_new_password1", "a-brand-new-password-31")
    page.fill("#id_new_password2", "a-brand-new-password-31")
    page.click("button:has-text('Set my password')")
    assert "Your new password is set" in page.inner_text("main")
    sign_in(page, live_server.url, member.username, "a-brand-new-password-31")
    page.wait_for_url(f"{live_server.url}/videos/")


def test_a_locked_out_sign_in_gets_a_plain_page(browser_page, live_server, member, settings):
    settings.AXES_FAILURE_LIMIT = 3
    page = browser_page
    for _ in range(3):
        sign_in(page, live_server.url, member.username, "wrong-password")
    assert "Sign-in is paused for a while" in page.inner_text("main")
    sign_in(page, live_server.url, member.username, PASSWORD)
    assert "Sign-in is paused for a while" in page.inner_text("main")
