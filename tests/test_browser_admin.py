"""In a real browser: a superuser sets up a team and its first team admin; the team admin then
runs the team, seeing nothing of other teams. The screenshots illustrate docs/admin.md."""

import pytest

from uploads.models import ApiKey, Membership, Team

from .conftest import PASSWORD, make_user
from .test_browser import shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def admin_sign_in(page, base, username):
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def test_superuser_sets_up_a_team_and_the_team_admin_runs_it(browser_page, live_server, django_user_model,
                                                              other_team):
    page, base = browser_page, live_server.url
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    make_user(django_user_model, "lena")
    make_user(django_user_model, "sam")

    admin_sign_in(page, base, "root")
    page.goto(f"{base}/admin/uploads/team/add/")
    page.locator("#id_name").press_sequentially("Marketing")
    assert page.input_value("#id_slug") == "marketing"  # filled in from the name
    page.click("input[name=_save]")
    page.goto(f"{base}/admin/uploads/membership/add/")
    page.fill("#id_username", "lena")
    page.select_option("#id_team", label="Marketing")
    page.select_option("#id_role", "admin")
    shot(page, "admin-add-team-admin")
    page.click("input[name=_save]")
    page.locator(".messagelist").wait_for()
    assert "was added successfully" in page.inner_text("body")
    page.goto(f"{base}/admin/uploads/apikey/add/")
    page.select_option("#id_team", label="Marketing")
    page.fill("#id_label", "Marketing production key")
    page.fill("#id_secret", "sk-mavi-marketing-key-7Q4P")
    shot(page, "admin-add-key")
    page.click("input[name=_save]")
    page.locator(".messagelist").wait_for()
    assert "…7Q4P" in page.inner_text("body") and "sk-mavi-marketing-key" not in page.content()
    team = Team.objects.get(name="Marketing")
    assert ApiKey.objects.get(team=team).reveal() == "sk-mavi-marketing-key-7Q4P"
    assert django_user_model.objects.get(username="lena").is_staff

    page.context.clear_cookies()
    admin_sign_in(page, base, "lena")
    page.wait_for_url(f"{base}/admin/")
    body = page.inner_text("body")
    assert "Team Two" not in body and "Users" not in body and "Groups" not in body
    shot(page, "admin-team-admin-index")
    page.goto(f"{base}/admin/uploads/membership/add/")
    page.fill("#id_username", "sam")
    page.click("input[name=_save]")
    page.locator(".messagelist").wait_for()
    assert Membership.objects.filter(user__username="sam", team=team).exists()
    page.goto(f"{base}/admin/uploads/apikey/")
    assert "Marketing production key" in page.inner_text("body")
    shot(page, "admin-team-admin-keys")
    page.goto(f"{base}/admin/uploads/team/")
    assert "Team Two" not in page.inner_text("body")
