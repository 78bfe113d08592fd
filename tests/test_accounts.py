"""memories.ai paces uploads per account, and all keys of one account share the limit (issue 9):
the portal gives each memories.ai account one upload slot, whichever teams hold its keys."""

import pytest

from uploads import standing
from uploads.models import MemoriesAccount, key_fingerprint

from .conftest import OTHER_KEY, TEST_KEY, account_of, give_key, make_due, queued_video, run_worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def paced(settings, emulator):
    settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS = 60
    emulator.upload_interval = 60  # memories.ai's own limit, per key
    return emulator


def test_two_teams_given_the_same_key_share_one_pace(team, other_team, api_key, member, outsider, paced):
    give_key(other_team, TEST_KEY)
    assert account_of(team) == account_of(other_team)
    first, second = queued_video(member, team, "one.mp4"), queued_video(outsider, other_team, "two.mp4")
    run_worker("relay")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("processing", "queued")
    assert [u.code for u in paced.uploads] == ["0000"]  # no 0429: the second waited its turn
    # after the account's slot: nothing of the account is queued ahead of it
    assert standing.describe([second])[second.pk]["line"] == "Next in Team Two's queue, to be sent in about 1 min."
    make_due()
    paced.upload_interval = 0  # the minute has passed for memories.ai too (its clock is real)
    run_worker("relay")
    second.refresh_from_db()
    assert second.status == "processing" and [u.code for u in paced.uploads] == ["0000", "0000"]


def test_teams_with_keys_of_different_accounts_do_not_wait_for_each_other(
        team, other_team, api_key, other_api_key, member, outsider, settings, emulator):
    settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS = 60
    assert account_of(team) != account_of(other_team)
    videos = queued_video(member, team, "one.mp4"), queued_video(outsider, other_team, "two.mp4")
    run_worker("relay")
    for video in videos:
        video.refresh_from_db()
        assert video.status == "processing"


def test_a_superuser_puts_two_keys_of_one_account_together(
        client, superuser, team, other_team, api_key, other_api_key, member, outsider, settings, emulator):
    settings.MEMPORTAL_UPLOAD_INTERVAL_SECONDS = 60
    client.force_login(superuser)
    response = client.post("/admin/uploads/apikey/", {"action": "share_account",
                                                      "_selected_action": [api_key.pk, other_api_key.pk]}, follow=True)
    assert "2 keys now share one memories.ai account" in response.content.decode()
    assert account_of(team) == account_of(other_team)
    first, second = queued_video(member, team, "one.mp4"), queued_video(outsider, other_team, "two.mp4")
    run_worker("relay")
    statuses = {v.refresh_from_db() or v.status for v in (first, second)}
    assert statuses == {"processing", "queued"}
    page = client.get(f"/admin/uploads/memoriesaccount/{account_of(team).pk}/change/").content.decode()
    assert "Main key" in page and "Team two key" in page


def test_team_admins_neither_see_accounts_nor_share_keys(client, team_admin, api_key):
    client.force_login(team_admin)
    assert client.get("/admin/uploads/memoriesaccount/").status_code == 403
    page = client.get("/admin/uploads/apikey/").content.decode()
    assert "share_account" not in page
    assert "memories.ai account" not in client.get(f"/admin/uploads/apikey/{api_key.pk}/change/").content.decode()


def test_the_fingerprint_is_an_hmac_not_the_key(api_key):
    assert api_key.fingerprint == key_fingerprint(TEST_KEY) != key_fingerprint(OTHER_KEY)
    assert TEST_KEY not in api_key.fingerprint and TEST_KEY[-8:] not in api_key.fingerprint


def test_a_new_secret_of_another_account_leaves_the_shared_account(team, other_team, api_key):
    shared = give_key(other_team, TEST_KEY)
    assert shared.account_id == api_key.account_id
    shared.set_secret(OTHER_KEY)
    shared.save()
    assert shared.account_id != api_key.account_id
    assert MemoriesAccount.objects.count() == 2
