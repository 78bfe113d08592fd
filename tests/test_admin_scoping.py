"""No leaks between teams in the Django admin, proved over every registered ModelAdmin.

Team 1 ("zqalpha") and team 2 ("zqbravo") each have a team admin, a member, a key, a video, an
event and a callback record, every one carrying its team's marker. For each ModelAdmin and each
route it exposes (changelist, search, filters, raw-id popup, add form, change form, delete
confirmation, history, autocomplete, every action on forged ids), a team admin never sees the
other team's marker and never changes the other team's rows; a member cannot open the admin.
A ModelAdmin registered later is walked by the same test: if team admins may see its model, it
must be a TeamScopedAdmin and the fixture must hold a row of it for each team, or this fails.
"""

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from uploads.admin import TeamScopedAdmin
from uploads.models import ApiKey, CallbackRecord, Membership, Team, VideoEvent

from .conftest import make_video

MARK = {1: "zqalpha", 2: "zqbravo"}


def build_team(django_user_model, n):
    mark = MARK[n]
    team = Team.objects.create(name=f"{mark} team", slug=mark)
    team_admin = django_user_model.objects.create_user(f"{mark}-admin", password="x")
    member = django_user_model.objects.create_user(f"{mark}-member", password="x")
    Membership.objects.create(user=team_admin, team=team, role=Membership.Role.ADMIN)
    Membership.objects.create(user=member, team=team, role=Membership.Role.MEMBER)
    key = ApiKey(team=team, label=f"{mark} key")
    key.set_secret(f"sk-{mark}-secret-{n}")
    key.save()
    video = make_video(member, team, name=f"{mark}-clip.mp4", title=f"{mark} video", video_no=f"VI{mark}",
                       status="processing", remote_status="UNPARSE")
    VideoEvent.objects.create(video=video, source="relay", to_status="processing", message=f"{mark} event")
    CallbackRecord.objects.create(video=video, body=f'{{"videoNo": "VI{mark}"}}', video_no=f"VI{mark}",
                                  remote_status="PARSE", outcome="applied")
    team_admin.refresh_from_db()
    return {"team": team, "admin": team_admin, "member": member, "key": key, "video": video}


@pytest.fixture
def world(django_user_model):
    return {n: build_team(django_user_model, n) for n in (1, 2)}


def registered():
    return [pytest.param(model, model_admin, id=model._meta.label) for model, model_admin in admin.site._registry.items()]


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def rows_of_team(model, model_admin, team):
    if model_admin.team_path:
        return model._default_manager.filter(**{f"{model_admin.team_path}": team})
    return model._default_manager.filter(pk=team.pk)


def team_admin_may_see(model, user):
    opts = model._meta
    return any(user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}")
               for action in ("view", "change", "add", "delete"))


def get_ok(client, path, **params):
    response = client.get(path, params)
    assert response.status_code < 500, path
    return response


@pytest.mark.parametrize("model, model_admin", registered())
def test_team_admins_see_and_change_only_their_own_team(client, world, model, model_admin):
    if not team_admin_may_see(model, world[1]["admin"]):
        # Superuser-only model: a team admin gets no page of it at all.
        for n in (1, 2):
            client.force_login(world[n]["admin"])
            assert client.get(url(model, "changelist")).status_code == 403
            assert model._meta.verbose_name_plural.capitalize() not in client.get("/admin/").content.decode()
        return

    assert isinstance(model_admin, TeamScopedAdmin), f"{model_admin} must derive from TeamScopedAdmin"
    for viewer, other in ((1, 2), (2, 1)):
        client.force_login(world[viewer]["admin"])
        own_rows = list(rows_of_team(model, model_admin, world[viewer]["team"]))
        other_rows = list(rows_of_team(model, model_admin, world[other]["team"]))
        assert own_rows and other_rows, f"the fixture needs a {model.__name__} row for each team"
        foreign = MARK[other]

        pages = [
            get_ok(client, url(model, "changelist")),
            # Search terms that match the other team's rows without echoing its marker back.
            get_ok(client, url(model, "changelist"), q=foreign[2:]),
            get_ok(client, url(model, "changelist"), q="VIzq"),
            get_ok(client, url(model, "changelist"), _popup="1", _to_field="id"),
            get_ok(client, url(model, "changelist"), team=str(world[other]["team"].pk)),
            get_ok(client, url(model, "changelist"), owner=str(world[other]["member"].pk)),
        ]
        if model_admin.has_add_permission(_request(world[viewer]["admin"])):
            pages.append(get_ok(client, url(model, "add")))
        for row in own_rows:
            assert get_ok(client, url(model, "change", row.pk)).status_code == 200
        for row in other_rows:
            for view in ("change", "delete", "history"):
                response = get_ok(client, url(model, view, row.pk))
                assert response.status_code in (302, 403, 404), (view, row)
                pages.append(response)
        for field in model._meta.get_fields():
            if field.is_relation and field.many_to_one:
                pages.append(get_ok(client, "/admin/autocomplete/", app_label=model._meta.app_label,
                                    model_name=model._meta.model_name, field_name=field.name, term="zq"))
        for response in pages:
            assert foreign not in response.content.decode(), response.request["PATH_INFO"]

        # Every action, run on the other team's ids, changes nothing of theirs.
        actions = model_admin.get_actions(_request(world[1]["admin"] if viewer == 1 else world[2]["admin"]))
        before = list(model._default_manager.filter(pk__in=[r.pk for r in other_rows]).values())
        for action in actions:
            response = client.post(url(model, "changelist"), {
                "action": action, "_selected_action": [r.pk for r in other_rows], "post": "yes"})
            assert response.status_code < 500, action
        after = list(model._default_manager.filter(pk__in=[r.pk for r in other_rows]).values())
        assert before == after
        assert not LogEntry.objects.filter(object_id__in=[str(r.pk) for r in other_rows],
                                           user=world[viewer]["admin"]).exists()


def _request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def test_a_member_cannot_open_the_admin(client, world):
    client.force_login(world[1]["member"])
    for model in admin.site._registry:
        response = client.get(url(model, "changelist"))
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.get("/admin/").status_code == 302


def test_a_superuser_sees_both_teams(client, world, superuser):
    client.force_login(superuser)
    for model in (Team, ApiKey, Membership):
        page = client.get(url(model, "changelist")).content.decode()
        assert MARK[1] in page and MARK[2] in page


# Issue 10, finding 2: the query string of no admin filters on a secret, nor by regex, nor on a
# date part out of range (a token recovered a character at a time; a web thread pinned; a 500).
@pytest.mark.parametrize("model, model_admin", registered())
def test_no_admin_filters_on_a_secret_or_by_regex_from_the_query_string(client, world, superuser, model,
                                                                        model_admin):
    from uploads.admin import SafeLookupsAdmin
    from uploads.admin.lookups import SECRET_FIELDS

    assert isinstance(model_admin, SafeLookupsAdmin)
    client.force_login(superuser)
    changelist = url(model, "changelist")
    fields = [f.name for f in model._meta.concrete_fields]
    refused = [f"{name}__regex" for name in fields] + [f"{name}__iregex" for name in fields]
    refused += [f"{name}__startswith" for name in fields if name in SECRET_FIELDS]
    refused += [f"{name}" for name in fields if name in SECRET_FIELDS]
    for lookup in refused:
        assert client.get(changelist, {lookup: "^a"}).status_code == 400, lookup
    for name in (f.name for f in model._meta.concrete_fields if f.get_internal_type() == "DateTimeField"):
        assert client.get(changelist, {f"{name}__year": "99999999999999999999"}).status_code == 400, name
        assert client.get(changelist, {f"{name}__regex": "("}).status_code == 400, name
    assert get_ok(client, changelist).status_code == 200
