"""Sign-in throttling (issue 10): django-axes, with its database handler, on Django 6.1. Ten wrong
passwords for one account, or from one address, pause sign-in there for the cool-off, on the
portal's sign-in and the admin's; the right password then does not get in either; a superuser
sees and clears the locks in the admin."""

import pytest
from axes.models import AccessAttempt
from django.test import Client

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(client, path, username, password, address="10.1.1.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_ten_wrong_passwords_pause_the_account_and_the_right_one_then_fails_too(path, member, settings):
    settings.AXES_FAILURE_LIMIT = 10
    client = Client()
    answers = [sign_in(client, path, member.username, "wrong").status_code for _ in range(10)]
    assert answers[:9] == [200] * 9 and answers[9] == 429
    response = sign_in(Client(), path, member.username, PASSWORD, address="10.9.9.9")  # another address
    assert response.status_code == 429 and "Sign-in is paused for a while" in response.content.decode()
    assert "_auth_user_id" not in Client().session


def test_one_address_guessing_many_accounts_is_paused(django_user_model, settings):
    settings.AXES_FAILURE_LIMIT = 10
    client = Client()
    for n in range(10):
        sign_in(client, "/accounts/login/", f"guess{n}", "wrong", address="10.2.2.2")
    django_user_model.objects.create_user("someone", password=PASSWORD)
    assert sign_in(client, "/accounts/login/", "someone", PASSWORD, address="10.2.2.2").status_code == 429
    assert sign_in(Client(), "/accounts/login/", "someone", PASSWORD, address="10.3.3.3").status_code == 302


def test_a_success_clears_the_count(member, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(2):
        sign_in(client, "/accounts/login/", member.username, "wrong")
    assert sign_in(client, "/accounts/login/", member.username, PASSWORD).status_code == 302
    for _ in range(2):
        assert sign_in(Client(), "/accounts/login/", member.username, "wrong").status_code == 200


def test_a_superuser_sees_the_locks_and_team_admins_do_not(client, member, superuser, team_admin, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        sign_in(Client(), "/accounts/login/", member.username, "wrong")
    assert AccessAttempt.objects.filter(username=member.username).exists()
    client.force_login(superuser)
    assert member.username in client.get("/admin/axes/accessattempt/").content.decode()
    client.force_login(team_admin)
    assert client.get("/admin/axes/accessattempt/").status_code == 403
