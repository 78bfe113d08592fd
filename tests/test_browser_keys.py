"""In a real browser: a team admin whose team uploads with a working key adds a second key (it
stays inactive), a mistyped one (memories.ai refuses it: saved inactive and failing), then makes
the good second key active on purpose. The screenshots illustrate docs/admin.md."""

import pytest

from uploads.models import ApiKey

from .conftest import OTHER_KEY, TEST_KEY
from .test_browser import shot
from .test_browser_admin import admin_sign_in
from .test_key_admin import WRONG_KEY

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def messages_text(page):
    page.locator("ul.messagelist").first.wait_for()
    return " ".join(page.locator("ul.messagelist li").all_inner_texts())


def test_a_team_admin_adds_a_second_key_a_wrong_key_and_activates_one_on_purpose(
        browser_page, live_server, team_admin, api_key, emulator):
    page, base = browser_page, live_server.url
    admin_sign_in(page, base, team_admin.username)
    page.wait_for_url(f"{base}/admin/")

    # A second key: "active" is not ticked, and the form says what ticking it would replace.
    page.goto(f"{base}/admin/uploads/apikey/add/")
    assert not page.is_checked("#id_is_active")
    assert "Activating this key replaces “Main key” (…K3Y9) as the team's key." in page.inner_text("#apikey_form")
    page.fill("#id_label", "Spare key")
    page.fill("#id_secret", OTHER_KEY)
    shot(page, "admin-keys-add-second")
    page.click("input[name=_save]")
    text = messages_text(page)
    assert "“Spare key” (…Z7Q2) works: memories.ai accepted it." in text
    assert "“Main key” (…K3Y9) stays the team's key." in text

    # A mistyped key, with "active" ticked: memories.ai refuses it, so it is saved inactive.
    page.goto(f"{base}/admin/uploads/apikey/add/")
    page.fill("#id_label", "Typo key")
    page.fill("#id_secret", WRONG_KEY)
    page.check("#id_is_active")
    page.click("input[name=_save]")
    text = messages_text(page)
    assert "“Typo key” (…W8X1) was saved inactive and marked failing: memories.ai refused" in text
    assert text.count("refused") == 1 and "“Main key” (…K3Y9) stays the team's key." in text
    assert page.locator("ul.memportal-failing-keys").count() == 0  # the team's key still works
    row = page.locator("tr", has_text="Typo key")
    assert "failing since" in row.inner_text() and "code 0401" in row.inner_text()
    shot(page, "admin-keys-wrong-key")

    # The good second key, made active on purpose on its own page.
    page.click("text=Spare key")
    assert "Activating this key replaces “Main key” (…K3Y9) as the team's key." in page.inner_text("#apikey_form")
    page.check("#id_is_active")
    page.click("input[name=_save]")
    text = messages_text(page)
    assert "It is now the team's active key in place of “Main key” (…K3Y9)." in text
    shot(page, "admin-keys-activated")
    assert ApiKey.objects.get(is_active=True).label == "Spare key"
    for secret in (TEST_KEY, OTHER_KEY, WRONG_KEY):
        assert secret not in page.content()


def test_a_key_change_long_after_sign_in_asks_for_the_password_first(browser_page, live_server, team_admin,
                                                                     api_key, settings):
    from .conftest import PASSWORD

    settings.MEMPORTAL_REAUTH_SECONDS = 0  # the sign-in is already too old to change a key
    page, base = browser_page, live_server.url
    admin_sign_in(page, base, team_admin.username)
    page.wait_for_url(f"{base}/admin/")
    page.goto(f"{base}/admin/uploads/apikey/{api_key.pk}/change/")
    assert "/admin/uploads/apikey/confirm/" in page.url and "needs your password again" in page.content()
    page.fill("#id_password", "not-my-password")
    page.click("input[type=submit]")
    assert "That is not your password." in page.content()
    settings.MEMPORTAL_REAUTH_SECONDS = 300
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/uploads/apikey/{api_key.pk}/change/")
    assert page.is_visible("#id_label")
