"""The upload page's resumable part on the server's side: the limits and the refusals the page's
script gets (#upload-config) are the server's own, word for word, and the duplicates lookup
(/videos/duplicates/) names only videos the user may see. In the browser: test_browser_resumable.py."""

import json
import re

from django.utils import timezone

from uploads.forms import CONTAINERS, not_accepted, refusal_reason
from uploads.models import Membership, Video

from .conftest import make_video, sample
from .test_upload import page_messages, post_upload, upload_file
from .tus_client import create


def page_config(client):
    html = client.get("/videos/upload/").content.decode()
    return json.loads(re.search(r'<script id="upload-config" type="application/json">(.*?)</script>', html,
                                re.S).group(1))


def test_the_page_carries_the_servers_limits(client, member, api_key, settings):
    settings.MEMPORTAL_UPLOAD_CHUNK_BYTES = 128 * 1024
    settings.MEMPORTAL_FILES_PER_SELECTION = 20
    settings.MEMPORTAL_UPLOADS_IN_FLIGHT_PER_USER = 4
    client.force_login(member)
    config = page_config(client)
    assert (config["endpoint"], config["duplicates_url"], config["states_url"]) == (
        "/uploads/tus/", "/videos/duplicates/", "/videos/states/")
    assert config["chunk_size"] == 128 * 1024 == int(client.options("/uploads/tus/")["Memportal-Chunk-Size"])
    assert (config["files_per_selection"], config["in_flight_per_user"]) == (20, 4)
    assert config["max_bytes"] == settings.MEMPORTAL_MAX_UPLOAD_BYTES
    assert config["extensions"] == list(CONTAINERS) and "moov" in config["quicktime_atoms"]
    assert "one selection may hold at most 20 files" in config["wording"]["too_many_chosen"]


def test_the_pages_refusals_are_the_forms_and_the_endpoints_word_for_word(client, member, api_key, settings):
    settings.MEMPORTAL_MAX_UPLOAD_BYTES = 1000
    settings.MEMPORTAL_UPLOADS_IN_FLIGHT_PER_USER = 1
    client.force_login(member)
    words = page_config(client)["wording"]
    said = lambda name, reason: words["not_accepted"].format(name=name, reason=reason)  # noqa: E731

    # The plain form's refusals...
    response = post_upload(client, member, [upload_file("notes.txt", b"hello"), upload_file("empty.mp4", b""),
                                            upload_file("fake.mkv", b"not a matroska file")])
    assert set(page_messages(response)) == {said("notes.txt", words["only_videos"]), said("empty.mp4", words["empty"]),
                                            said("fake.mkv", words["not_its_container"][".mkv"])}
    # ...and the resumable endpoint's, as the page would say them before sending.
    assert create(client, "big.mp4", 1001).content.decode().strip() == said("big.mp4", words["too_large"])
    assert create(client, "clip.mov", 500).status_code == 201
    refused = create(client, "next.mp4", 500)
    assert refused.status_code == 429
    assert refused.content.decode().strip() == said("next.mp4", words["too_many_in_flight"].format(count=1))
    client.logout()
    assert client.head("/uploads/tus/00000000-0000-4000-8000-000000000000/", headers={
        "Tus-Resumable": "1.0.0"}).status_code == 401
    assert client.post("/uploads/tus/", headers={"Tus-Resumable": "1.0.0"}).content.decode().strip() == (
        words["signed_out"])
    for extension, label in CONTAINERS.items():
        stub = type("Stub", (), {"name": f"x{extension}", "size": 5, "seek": lambda self, at: None,
                                 "read": lambda self, size: b"\0" * size})()
        assert refusal_reason(stub) == words["not_its_container"][extension] and label[0] in refusal_reason(stub)
    assert not_accepted("a.mp4", "b") == said("a.mp4", "b")


def duplicates(client, name, size, **extra):
    response = client.get("/videos/duplicates/", {"name": name, "size": size, **extra})
    assert response.status_code == 200, response.content
    return response.json()


def same_file(owner, team, name="clip.mp4", **changes):
    video = make_video(owner, team, name=name)
    Video.objects.filter(pk=video.pk).update(**changes)
    return video


SIZE = len(sample("sample-h264-aac.mp4").read_bytes())


def test_a_video_the_user_may_see_is_named_with_its_page(client, member, team, api_key):
    own = same_file(member, team, title="Launch talk", status="ready")
    client.force_login(member)
    found = duplicates(client, "clip.mp4", SIZE)
    assert found["team_has_it"] is False
    assert found["videos"] == [{"id": str(own.pk), "url": f"/videos/{own.pk}/", "name": "Launch talk",
                                "status": "ready", "label": "Ready", "mine": True, "owner": "mia",
                                "uploaded": timezone.now().date().isoformat()}]
    assert duplicates(client, "clip.mp4", SIZE + 1) == {"videos": [], "team_has_it": False}
    assert duplicates(client, "other.mp4", SIZE) == {"videos": [], "team_has_it": False}


def test_a_teammates_video_is_only_said_to_a_member_and_named_to_the_team_admin(client, member, teammate, team,
                                                                               team_admin, api_key):
    theirs = same_file(teammate, team)
    client.force_login(member)
    assert duplicates(client, "clip.mp4", SIZE) == {"videos": [], "team_has_it": True}
    client.force_login(team_admin)
    found = duplicates(client, "clip.mp4", SIZE)
    assert [v["id"] for v in found["videos"]] == [str(theirs.pk)] and found["videos"][0]["owner"] == "tom"
    assert found["team_has_it"] is False


def test_other_teams_deleted_and_cancelled_videos_are_no_duplicates(client, member, outsider, team, other_team,
                                                                   api_key):
    same_file(outsider, other_team)
    same_file(member, team, deleted_at=timezone.now())
    same_file(member, team, status="cancelled")
    client.force_login(member)
    assert duplicates(client, "clip.mp4", SIZE) == {"videos": [], "team_has_it": False}


def test_the_lookup_keeps_to_the_team_asked_about(client, member, team, other_team, api_key, other_api_key):
    Membership.objects.create(user=member, team=other_team, role=Membership.Role.MEMBER)
    same_file(member, other_team)
    client.force_login(member)
    assert len(duplicates(client, "clip.mp4", SIZE)["videos"]) == 1
    assert duplicates(client, "clip.mp4", SIZE, team=team.pk)["videos"] == []
    assert len(duplicates(client, "clip.mp4", SIZE, team=other_team.pk)["videos"]) == 1
    assert duplicates(client, "clip.mp4", SIZE, team="x")["videos"] == []


def test_the_lookup_wants_a_name_a_size_and_a_signed_in_user(client, member, api_key):
    client.force_login(member)
    assert client.get("/videos/duplicates/", {"name": "clip.mp4", "size": "-1"}).status_code == 400
    assert client.get("/videos/duplicates/", {"size": "10"}).status_code == 400
    client.logout()
    response = client.get("/videos/duplicates/", {"name": "clip.mp4", "size": "10"})
    assert response.status_code == 302 and "login" in response["Location"]
