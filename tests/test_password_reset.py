"""Password reset works and tells nothing (issue 10): the same answer for any address, the mail
sent by the worker with a link that works, and a limit per address and per e-mail that all
processes share (the database)."""

import re

import pytest
from django.core import mail
from django.test import Client
from django_tasks_db.models import DBTaskResult

from .conftest import run_worker

pytestmark = pytest.mark.django_db(transaction=True)


def ask(email, address="10.4.4.4"):
    return Client().post("/accounts/password_reset/", {"email": email}, REMOTE_ADDR=address)


def reset_tasks():
    return DBTaskResult.objects.filter(task_path="uploads.tasks.send_password_reset")


def test_a_known_address_gets_a_working_link_from_the_worker(member):
    member.email = "mia@example.com"
    member.save()
    response = ask("MIA@example.com")
    assert response.status_code == 302 and response.url == "/accounts/password_reset/done/"
    assert mail.outbox == [] and reset_tasks().count() == 1  # the page did not wait for the mail
    assert "token" not in str(reset_tasks().get().args_kwargs)
    run_worker("default")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["mia@example.com"]
    link = re.search(r"http://\S+/accounts/reset/\S+/", mail.outbox[0].body).group(0)
    path = link.split("testserver", 1)[1]
    client = Client()
    form = client.get(path, follow=True)
    assert form.status_code == 200 and "new_password1" in form.content.decode()
    done = client.post(form.redirect_chain[-1][0], {"new_password1": "a-new-long-password-77",
                                                    "new_password2": "a-new-long-password-77"})
    assert done.status_code == 302
    member.refresh_from_db()
    assert member.check_password("a-new-long-password-77")


def test_an_unknown_address_gets_the_same_answer_and_no_mail(member):
    known, unknown = ask(member.email or "x@example.com"), ask("nobody@example.com")
    assert (unknown.status_code, unknown.url) == (known.status_code, known.url)
    assert not reset_tasks().filter(args_kwargs__args__0=-1).exists()
    run_worker("default")
    assert all(m.to != ["nobody@example.com"] for m in mail.outbox)


def test_requests_are_limited_per_email_and_per_address(member, settings):
    member.email = "mia@example.com"
    member.save()
    settings.MEMPORTAL_RESET_PER_EMAIL, settings.MEMPORTAL_RESET_PER_ADDRESS = 3, 5
    answers = [ask("mia@example.com", address=f"10.5.5.{n}") for n in range(5)]
    assert {(a.status_code, a.url) for a in answers} == {(302, "/accounts/password_reset/done/")}
    assert reset_tasks().count() == 3
    for n in range(5):
        ask(f"other{n}@example.com", address="10.6.6.6")
    member2_answer = ask("mia@example.com", address="10.6.6.6")  # that address is spent too
    assert member2_answer.status_code == 302 and reset_tasks().count() == 3


def test_the_sign_in_page_offers_it(client):
    assert "/accounts/password_reset/" in client.get("/accounts/login/").content.decode()


def test_a_new_password_has_at_least_12_characters(client, member):
    client.force_login(member)
    response = client.post("/accounts/password_change/", {"old_password": "a-long-test-password-42",
                                                           "new_password1": "Kx7#qLm2pZ", "new_password2": "Kx7#qLm2pZ"})
    assert response.status_code == 200 and "at least 12 characters" in response.content.decode()
