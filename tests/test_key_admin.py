"""A team admin adds, tries and activates memories.ai keys in the admin (the emulator on loopback
is memories.ai: it knows TEST_KEY and OTHER_KEY, and answers any other key with 0401).

Activation is a choice: a second key does not replace a working one unless the admin ticks
"active", and a key memories.ai refuses never does. Every try of a key (on save, "Test key")
is the key's state, and each message says what happened once, with what to do."""

import html
import logging
import re

import pytest

from uploads import memories
from uploads.models import ApiKey

from .conftest import OTHER_KEY, TEST_KEY, make_video, relay_tasks

WRONG_KEY = "sk-mavi-typo-0123456789abcdef-W8X1"  # unknown to the emulator: 0401


@pytest.fixture
def admin_client(client, team_admin):
    client.force_login(team_admin)
    return client


def texts(response, kind="messagelist"):
    """The plain text of each message ("messagelist") or banner ("memportal-failing-keys") of a page."""
    body = response.content.decode()
    items = []
    for classes, block in re.findall(r'<ul class="([^"]*)">(.*?)</ul>', body, re.S):
        if classes.split() != [kind] and kind not in classes.split()[1:]:
            continue
        for item in re.findall(r"<li[^>]*>(.*?)</li>", block, re.S):
            items.append(" ".join(html.unescape(re.sub(r"<[^>]+>", "", item)).split()))
    return items


def active_box(response):
    """The add form's "active" checkbox tag."""
    return re.search(r'<input[^>]*name="is_active"[^>]*>', response.content.decode()).group(0)


def add_key(admin_client, team, secret, label, active):
    data = {"team": team.pk, "label": label, "secret": secret}
    if active:
        data["is_active"] = "on"
    return admin_client.post("/admin/uploads/apikey/add/", data, follow=True)


def assert_says_it_once(text):
    for words in ["refused", "authorization invalid", "code 0401", "memories.ai refused"]:
        assert text.count(words) <= 1, (words, text)
    assert "((" not in text and "))" not in text and ".." not in text, text


def test_the_add_form_ticks_active_only_when_the_team_has_no_working_key(admin_client, team):
    page = admin_client.get("/admin/uploads/apikey/add/")
    assert "checked" in active_box(page)  # no key yet: the first one is the team's key
    assert "The team has no active key" in page.content.decode()

    key = ApiKey(team=team, label="Main key")
    key.set_secret(TEST_KEY)
    key.save()
    page = admin_client.get("/admin/uploads/apikey/add/")
    assert "checked" not in active_box(page)
    assert "Activating this key replaces “Main key” (…K3Y9) as the team's key." in html.unescape(
        page.content.decode())

    key.mark_failing("memories.ai refused the team's API key (authorization invalid) (code 0401)")
    page = admin_client.get("/admin/uploads/apikey/add/")
    assert "checked" in active_box(page)  # a failing key is no working key
    assert "replaces “Main key” (…K3Y9), which is failing" in html.unescape(page.content.decode())


def test_adding_a_second_key_leaves_the_working_one_active_unless_activation_is_chosen(
        admin_client, team, api_key, emulator):
    response = add_key(admin_client, team, OTHER_KEY, "Spare key", active=False)
    spare = ApiKey.objects.get(label="Spare key")
    api_key.refresh_from_db()
    assert api_key.is_active and not api_key.is_failing
    assert not spare.is_active and not spare.is_failing and spare.last_tested_at is not None
    assert ("“Spare key” (…Z7Q2) works: memories.ai accepted it. It is inactive: “Main key” (…K3Y9) stays the "
            "team's key."
            in " ".join(texts(response)))
    assert OTHER_KEY not in response.content.decode()


def test_a_wrong_key_is_saved_inactive_and_failing_with_one_clear_message(admin_client, team, api_key, emulator,
                                                                          caplog):
    caplog.set_level(logging.DEBUG)
    response = add_key(admin_client, team, WRONG_KEY, "Typo key", active=True)  # activation chosen
    typo = ApiKey.objects.get(label="Typo key")
    api_key.refresh_from_db()
    assert api_key.is_active and not api_key.is_failing  # the working key stays the team's key
    assert not typo.is_active and typo.is_failing and typo.last_tested_at is not None
    assert "code 0401" in typo.last_error
    [error] = [text for text in texts(response) if "Typo key" in text and "refused" in text]
    assert error.startswith("“Typo key” (…W8X1) was saved inactive and marked failing: memories.ai refused")
    assert "“Main key” (…K3Y9) stays the team's key." in error and "memories.ai's dashboard" in error
    assert_says_it_once(error)
    assert not texts(response, "memportal-failing-keys")  # the team's key works: no banner
    page = admin_client.get("/admin/uploads/apikey/").content.decode()
    assert "failing since" in page and "code 0401" in page
    for text in (response.content.decode(), page, caplog.text):
        assert WRONG_KEY not in text and TEST_KEY not in text


def test_a_wrong_key_for_a_team_without_a_working_key_is_its_active_failing_key(admin_client, team, emulator):
    response = add_key(admin_client, team, WRONG_KEY, "Typo key", active=True)
    typo = ApiKey.objects.get()
    assert typo.is_active and typo.is_failing
    [error] = [text for text in texts(response) if "Typo key" in text and "refused" in text]
    assert "It is now the team's active key." in error and "uploads wait" in error
    assert_says_it_once(error)
    [banner] = texts(response, "memportal-failing-keys")
    assert_says_it_once(banner)


def test_explicit_activation_of_a_good_second_key_replaces_the_first_and_says_so(admin_client, team, api_key,
                                                                                  emulator):
    response = add_key(admin_client, team, OTHER_KEY, "New key", active=True)
    new = ApiKey.objects.get(label="New key")
    api_key.refresh_from_db()
    assert new.is_active and not new.is_failing and new.last_tested_at is not None
    assert not api_key.is_active
    assert ("“New key” (…Z7Q2) works: memories.ai accepted it. It is now the team's active key in place of "
            "“Main key” (…K3Y9)." in texts(response))


def test_a_key_memories_ai_cannot_be_asked_about_is_saved_not_tested(admin_client, team, api_key):
    # No emulator: MEMORIES_API_BASE_URL is a closed loopback port.
    response = add_key(admin_client, team, OTHER_KEY, "Spare key", active=False)
    spare = ApiKey.objects.get(label="Spare key")
    assert not spare.is_active and not spare.is_failing and spare.last_tested_at is None
    assert spare.last_error.startswith("not tested: memories.ai could not be reached (")
    [warning] = [text for text in texts(response) if "Spare key" in text and "not tested" in text]
    assert "was saved but not tested: memories.ai could not be reached" in warning
    assert "“Main key” (…K3Y9) stays the team's key" in warning
    page = admin_client.get("/admin/uploads/apikey/").content.decode()
    assert "not tested: memories.ai could not be reached" in page


def test_a_refused_new_secret_for_the_working_key_changes_nothing(admin_client, api_key, emulator):
    response = admin_client.post(f"/admin/uploads/apikey/{api_key.pk}/change/", {
        "label": "Main key", "secret": WRONG_KEY, "is_active": "on"})
    assert response.status_code == 200  # the form again, with the reason
    body = html.unescape(response.content.decode())
    assert "Not saved: memories.ai refused" in body and "“Main key” (…K3Y9) keeps the key it has" in body
    assert WRONG_KEY not in body
    api_key.refresh_from_db()
    assert api_key.reveal() == TEST_KEY and api_key.is_active and not api_key.is_failing


def test_activating_a_refused_key_over_a_working_one_keeps_the_working_one(admin_client, team, api_key, emulator):
    spare = ApiKey(team=team, label="Spare key", is_active=False)
    spare.set_secret(WRONG_KEY)
    spare.save()
    response = admin_client.post(f"/admin/uploads/apikey/{spare.pk}/change/", {
        "label": "Spare key", "secret": "", "is_active": "on"}, follow=True)
    spare.refresh_from_db()
    api_key.refresh_from_db()
    assert api_key.is_active and not spare.is_active and spare.is_failing
    assert any("was saved inactive and marked failing" in text for text in texts(response))


def state_of(page, label):
    row = re.search(rf"<tr>(?:(?!</tr>).)*{label}(?:(?!</tr>).)*</tr>", page, re.S).group(0)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", re.search(
        r'<td class="field-state">(.*?)</td>', row, re.S).group(1))).split())


def test_the_state_column_follows_every_test_of_a_key(admin_client, team, api_key, emulator, member):
    typo = ApiKey(team=team, label="Typo key", is_active=False)
    typo.set_secret(WRONG_KEY)
    typo.save()
    response = admin_client.post("/admin/uploads/apikey/", {
        "action": "test_keys", "_selected_action": [api_key.pk, typo.pk]}, follow=True)
    page = response.content.decode()
    assert state_of(page, "Typo key").startswith("failing since")
    assert "code 0401" in state_of(page, "Typo key")
    assert state_of(page, "Main key").startswith("OK (memories.ai accepted it")
    [refusal] = [text for text in texts(response) if "Typo key" in text]
    assert refusal.startswith("“Typo key” (…W8X1) is marked failing: memories.ai refused")
    assert_says_it_once(refusal)

    # memories.ai now refuses the team's active key: its state says so, and the banner.
    make_video(member, team)  # queued, waiting for a working key
    emulator.inject("list", "code", code="0402")
    response = admin_client.post("/admin/uploads/apikey/", {
        "action": "test_keys", "_selected_action": [api_key.pk]}, follow=True)
    api_key.refresh_from_db()
    assert api_key.is_failing and "code 0402" in api_key.last_error
    assert state_of(response.content.decode(), "Main key").startswith("failing since")
    assert texts(response, "memportal-failing-keys")

    # It works again: "Test key" clears the mark and resumes the team's queue, once.
    assert not relay_tasks().exists()
    for _ in range(2):
        response = admin_client.post("/admin/uploads/apikey/", {
            "action": "test_keys", "_selected_action": [api_key.pk]}, follow=True)
    api_key.refresh_from_db()
    assert not api_key.is_failing and api_key.last_error == ""
    assert state_of(response.content.decode(), "Main key").startswith("OK")
    assert relay_tasks().count() == 1  # one relay for the waiting video, not one per test
    assert not texts(response, "memportal-failing-keys")


def test_a_test_that_cannot_reach_memories_ai_leaves_the_state_as_it_was(admin_client, api_key):
    response = admin_client.post("/admin/uploads/apikey/", {
        "action": "test_keys", "_selected_action": [api_key.pk]}, follow=True)
    api_key.refresh_from_db()
    assert not api_key.is_failing and api_key.last_error == ""
    assert any("was not tested: memories.ai could not be reached" in text for text in texts(response))


def test_the_banner_and_the_upload_page_say_what_happened_once(admin_client, client, api_key, member, emulator):
    with pytest.raises(memories.MemoriesError) as refused:
        memories.list_videos(WRONG_KEY)
    api_key.mark_failing(str(refused.value))  # as the relay records a refusal (uploads/lifecycle.py)

    [banner] = texts(admin_client.get("/admin/"), "memportal-failing-keys")
    assert_says_it_once(banner)
    assert "“Main key” (…K3Y9)" in banner and "memories.ai refused" in banner and "code 0401" in banner
    assert "Check the key in memories.ai's dashboard" in banner and "Re-enable" in banner

    client.force_login(member)
    page = client.get("/videos/upload/").content.decode()
    [notice] = [text for text in re.findall(r"Uploads for Team One are paused[^<]*", html.unescape(page))]
    assert_says_it_once(notice)
    assert "memories.ai refused" in notice and "…K3Y9" in notice and "team admin" in notice
    assert TEST_KEY not in page and WRONG_KEY not in page
