"""memories.ai API keys in the admin: entered in a password field, never shown again in full.

A key is tried at memories.ai (its cheapest authenticated call) when it is added, given a new
secret, or made active, and by the "Test key" action; each result is the key's state (failing
with the reason, OK with the time of the test, or "not tested" when memories.ai could not be
reached). Activation is a choice: a second key is added inactive unless the admin ticks active,
and a key memories.ai refuses never replaces a working one.
"""

import logging
import time
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import authenticate
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.debug import sensitive_post_parameters

from memportal.sessions import CONFIRMED_AT, recently_confirmed

from .. import actions, memories, tasks
from ..crypto import ApiKeyDecryptionError
from ..models import ApiKey, AuditEvent, MemoriesAccount, Team, audit
from .scoping import TeamScopedAdmin

logger = logging.getLogger(__name__)

OK, REFUSED, UNTESTED = "ok", "refused", "untested"
WHAT_TO_DO = "Check the key in memories.ai's dashboard, then save the right key here or press “Re-enable”."


@dataclass(frozen=True)
class Trial:
    """What memories.ai said when asked with a key: OK, REFUSED (with memories.ai's reason) or
    UNTESTED (memories.ai could not be reached: the reason is the key's "not tested" note)."""

    verdict: str
    reason: str = ""


def named(key):
    return f"“{key.label}” ({key.masked})"


def sentence(text):
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else f"{text}."


def try_key(key) -> Trial:
    """Ask memories.ai's list_videos with the key. The reason never holds the key itself."""
    try:
        memories.list_videos(key.reveal())
    except ApiKeyDecryptionError as error:
        trial = Trial(REFUSED, str(error))
    except memories.MemoriesError as error:
        reason = str(error).replace(key.reveal(), key.masked)  # in case memories.ai echoed it
        if error.kind == memories.KEY:
            trial = Trial(REFUSED, reason)
        elif error.kind in (memories.RETRY, memories.CONFIG):
            trial = Trial(UNTESTED, f"not tested: memories.ai could not be reached ({reason})")
        else:
            trial = Trial(UNTESTED, f"not tested: memories.ai did not take the test request ({reason})")
    else:
        trial = Trial(OK)
    logger.info("key %s tried at memories.ai: %s %s", key, trial.verdict, trial.reason)
    team = Team.objects.filter(pk=key.team_id).first() if key.team_id else None  # an add form's key has none yet
    audit(AuditEvent.Action.KEY_TESTED, named(key), team=team, detail=f"{trial.verdict} {trial.reason}".strip())
    return trial


def activation_help(team, key):
    """What ticking "active" does for this team (HTML: the admin shows help texts unescaped)."""
    if key.pk and key.is_active:
        return "This is the team's active key: unticking it leaves the team without one, and its uploads wait."
    if team is None:
        return ("One key per team is active: activating this key replaces the team's active key. "
                "Leave it unticked to add the key without changing the key the team uploads with.")
    current = team.api_keys.filter(is_active=True).exclude(pk=key.pk).first()
    if current is None:
        return "The team has no active key: activate this one to upload with it."
    if current.is_failing:
        return format_html("Activating this key replaces {}, which is failing, as the team's key.", named(current))
    return format_html("Activating this key replaces {} as the team's key. Leave it unticked to add this key "
                       "without changing that. A key memories.ai refuses is saved inactive.", named(current))


class ApiKeyForm(forms.ModelForm):
    secret = forms.CharField(
        label="API key", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="The memories.ai key. It is stored encrypted and never shown again; "
                  "leave empty to keep the current one. It is tried at memories.ai when saved.",
    )

    class Meta:
        model = ApiKey
        fields = ["team", "label", "secret", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trial = None
        if "is_active" in self.fields:
            self.fields["is_active"].help_text = activation_help(self.chosen_team(), self.instance)

    def chosen_team(self):
        """The key's team, or the one chosen (or offered) on the add form; None if not known."""
        if self.instance.pk:
            return self.instance.team
        if "team" not in self.fields:
            return None
        try:
            return self.fields["team"].queryset.filter(pk=self["team"].value()).first()
        except (TypeError, ValueError):
            return None

    def clean_secret(self):
        secret = self.cleaned_data.get("secret", "")
        if not secret and not self.instance.pk:
            raise forms.ValidationError("Enter the API key.")
        if any(ch.isspace() for ch in secret):
            raise forms.ValidationError("An API key has no spaces in it.")
        if not all(" " < ch < "\x7f" for ch in secret):
            # It travels in an HTTP header, which carries only these; a pasted “smart” character
            # would otherwise fail every call.
            raise forms.ValidationError("An API key is made of plain letters, digits and punctuation "
                                        "(no accents, quotes like “ ” or other special characters).")
        return secret

    def clean(self):
        """Try the key at memories.ai when it is new, has a new secret, or is being activated
        (the admin's save_model acts on self.trial). A new secret memories.ai refuses for the
        team's working key changes nothing: the key it has works."""
        cleaned = super().clean()
        key, secret = self.instance, cleaned.get("secret")
        activating = bool(cleaned.get("is_active")) and not (key.pk and key.is_active)
        if self.errors or (key.pk and not secret and not activating):
            return cleaned
        probe = key
        if secret:
            probe = ApiKey(label=cleaned.get("label") or key.label)
            probe.set_secret(secret)
        self.trial = try_key(probe)
        if self.trial.verdict == REFUSED and secret and key.pk and key.is_active and not key.is_failing:
            self.add_error("secret", f"Not saved: {sentence(self.trial.reason)} {named(key)} keeps the key it has, "
                                     "which works. Check the key in memories.ai's dashboard, then enter it again.")
        return cleaned

    def save(self, commit=True):
        if self.cleaned_data.get("secret"):
            self.instance.set_secret(self.cleaned_data["secret"])
            # A new secret deserves a fresh start.
            self.instance.failing_since = None
            self.instance.last_error = ""
            self.instance.last_tested_at = None
        return super().save(commit)


@admin.register(ApiKey)
class ApiKeyAdmin(TeamScopedAdmin):
    form = ApiKeyForm
    list_display = ["label", "team", "masked_key", "is_active", "state", "created_by", "created_at",
                    "last_used_at"]
    list_filter = ["is_active"]
    search_fields = ["label"]
    readonly_fields = ["masked_key", "created_by", "created_at", "last_used_at", "last_tested_at", "failing_since",
                       "last_error"]
    actions = ["test_keys", "reenable_keys", "deactivate_keys", "share_account"]

    def get_fields(self, request, obj=None):
        fields = ["team", "label", "secret", "is_active"]
        if not obj:
            return fields
        # The account names other teams' keys: for superusers only.
        return fields + self.readonly_fields + (["account"] if request.user.is_superuser else [])

    def get_readonly_fields(self, request, obj=None):
        return ["team", *self.readonly_fields, "account"] if obj else []

    def get_actions(self, request, action_location=admin.ActionLocation.CHANGE_LIST):
        found = super().get_actions(request, action_location)
        if not request.user.is_superuser:
            found.pop("share_account", None)
        return found

    def get_changeform_initial_data(self, request):
        """The add form's "active" is ticked only when no team it may be for has a working key:
        activating a second key is a choice, never the default."""
        initial = super().get_changeform_initial_data(request)
        teams = self.administered_teams(request)
        if "team" in initial:
            try:
                teams = teams.filter(pk=initial["team"])
            except (TypeError, ValueError):
                pass
        if len(teams) == 1:
            initial.setdefault("team", teams[0].pk)
        initial.setdefault("is_active", not teams.filter(pk__in=Team.objects.with_usable_key()).exists())
        return initial

    @admin.display(description="key")
    def masked_key(self, key):
        return key.masked

    @admin.display(description="state")
    def state(self, key):
        if key.is_failing:
            return format_html('<span class="memportal-failing">failing since {}: {}</span>',
                               timezone.localtime(key.failing_since).strftime("%Y-%m-%d %H:%M"), key.last_error)
        if key.last_error:  # a note: the last try could not reach memories.ai
            return format_html('<span class="memportal-untested">{}</span>', key.last_error)
        if key.last_tested_at:
            return f"OK (memories.ai accepted it {timezone.localtime(key.last_tested_at):%Y-%m-%d %H:%M})"
        return "OK"

    @method_decorator(sensitive_post_parameters("secret"))  # error reports never show the key
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Adding or changing a key asks for the password again unless it was typed recently.
        if not recently_confirmed(request):
            return redirect(f"{reverse('admin:uploads_apikey_confirm')}?{urlencode({'next': request.get_full_path()})}")
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        confirm = path("confirm/", self.admin_site.admin_view(self.confirm_view), name="uploads_apikey_confirm")
        return [confirm, *super().get_urls()]

    @method_decorator(sensitive_post_parameters("password"))
    def confirm_view(self, request):
        """The password again, before a key is added or changed (MEMPORTAL_REAUTH_SECONDS)."""
        target = request.GET.get("next") or reverse("admin:uploads_apikey_changelist")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = reverse("admin:uploads_apikey_changelist")
        error = ""
        if request.method == "POST":
            # Through authenticate(): django-axes counts a wrong password as a failed sign-in (and
            # pauses this account or address after too many), and the audit trail records it.
            user = authenticate(request, username=request.user.get_username(),
                                password=request.POST.get("password", ""))
            if user is not None and user.pk == request.user.pk:
                request.session[CONFIRMED_AT] = time.time()
                return redirect(target)
            error = "That is not your password."
        return render(request, "admin/confirm_password.html", {
            **self.admin_site.each_context(request), "title": "Confirm your password", "error": error,
            "next": target})

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        trial = form.trial
        previous = obj.team.api_keys.filter(is_active=True).exclude(pk=obj.pk).first()
        kept = None
        if trial is not None:
            now = timezone.now()
            if trial.verdict == OK:
                obj.failing_since, obj.last_error, obj.last_tested_at = None, "", now
            elif trial.verdict == REFUSED:
                obj.failing_since = obj.failing_since or now
                obj.last_error, obj.last_tested_at = trial.reason[:500], now
                if obj.is_active and previous is not None and not previous.is_failing:
                    obj.is_active, kept = False, previous  # a refused key never replaces a working one
            elif not obj.is_failing and obj.last_tested_at is None:
                obj.last_error = trial.reason[:500]  # "not tested: ..."
        replaced = previous if obj.is_active else None
        save_and_resume(obj, lambda: super(ApiKeyAdmin, self).save_model(request, obj, form, change))
        if trial is not None:
            self.message_user(request, *saved_message(obj, trial, replaced, kept))

    @admin.action(description="Test key (ask memories.ai's list_videos)")
    def test_keys(self, request, queryset):
        for key in queryset:
            trial = try_key(key)
            now = timezone.now()
            if trial.verdict == OK:
                was_failing = key.is_failing
                save_and_resume(key, lambda key=key: ApiKey.objects.filter(pk=key.pk).update(
                    failing_since=None, last_error="", last_tested_at=now))
                text = f"{named(key)}: OK, memories.ai accepted it."
                if was_failing:
                    self.log_change(request, key, "Tested: memories.ai accepted it (failing mark cleared).")
                    text += (" Its failing mark is cleared and the team's waiting uploads resume." if key.is_active
                             else " Its failing mark is cleared.")
                self.message_user(request, text, messages.SUCCESS)
            elif trial.verdict == REFUSED:
                ApiKey.objects.filter(pk=key.pk).update(failing_since=Coalesce("failing_since", Value(now)),
                                                        last_error=trial.reason[:500], last_tested_at=now)
                self.log_change(request, key, f"Tested: marked failing ({trial.reason[:200]}).")
                waits = " The team's uploads wait until a key works." if key.is_active else ""
                self.message_user(request, f"{named(key)} is marked failing: {sentence(trial.reason)}{waits} "
                                           f"{WHAT_TO_DO}", messages.ERROR)
            else:
                # No verdict: the key's state stays what the last answer made it.
                self.message_user(request, f"{named(key)} was {trial.reason}. Its state is unchanged; "
                                           "run “Test key” again later.", messages.WARNING)

    @admin.action(description="Re-enable (clear the failing mark and resume the team's uploads)",
                  permissions=["change"])
    def reenable_keys(self, request, queryset):
        for key in queryset:
            key.failing_since = None
            key.last_error = ""
            save_and_resume(key, key.save)
            self.log_change(request, key, "Re-enabled (failing mark cleared).")
        self.message_user(request, f"{queryset.count()} key(s) re-enabled.")

    @admin.action(description="Deactivate", permissions=["change"])
    def deactivate_keys(self, request, queryset):
        for key in queryset:
            key.is_active = False
            key.save()
            self.log_change(request, key, "Deactivated.")
        self.message_user(request, f"{queryset.count()} key(s) deactivated.")


    @admin.action(description="Share one memories.ai account (these keys' uploads are paced together)")
    def share_account(self, request, queryset):
        if not request.user.is_superuser:
            return
        keys = list(queryset.order_by("pk"))
        if len(keys) < 2:
            self.message_user(request, "Select two or more keys of one memories.ai account.", messages.WARNING)
            return
        account_id = merge_accounts([key.pacing_account_id() for key in keys])
        for key in keys:
            self.log_change(request, key, f"Put in memories.ai account {account_id} (one upload pace).")
        self.message_user(request, f"{len(keys)} keys now share one memories.ai account and one upload pace.")


def merge_accounts(account_ids):
    """Make these memories.ai accounts one: every key of each moves to the first, which keeps the
    latest slot and the highest backoff of them all (nothing may start inside an interval), and the
    emptied accounts go. Returns the account's id."""
    target, *others = sorted(set(account_ids), key=account_ids.index)
    with transaction.atomic():
        accounts = list(MemoriesAccount.objects.select_for_update().filter(pk__in=[target, *others]))
        slots = [a.next_upload_at for a in accounts if a.next_upload_at]
        MemoriesAccount.objects.filter(pk=target).update(
            next_upload_at=max(slots) if slots else None,
            upload_backoff_level=max(a.upload_backoff_level for a in accounts))
        ApiKey.objects.filter(account_id__in=others).update(account_id=target)
        MemoriesAccount.objects.filter(pk__in=others).delete()
    return target


def saved_message(key, trial, replaced, kept):
    """(text, level) for a saved key that was tried: what memories.ai said, once, and which key
    the team uploads with now."""
    if key.is_active:
        now_active = "It is now the team's active key"
        now_active += f" in place of {named(replaced)}." if replaced is not None else "."
    else:
        working = key.team.usable_key()
        now_active = (f"It is inactive: {named(working)} stays the team's key. To switch, open “{key.label}”, "
                      "tick active and save." if working is not None else
                      f"It is inactive, and {key.team} has no working key: its uploads wait until a key is "
                      f"active. To use this one, open “{key.label}”, tick active and save.")
    if trial.verdict == OK:
        level = messages.SUCCESS if key.is_active or key.team.usable_key() else messages.WARNING
        return f"{named(key)} works: memories.ai accepted it. {now_active}", level
    if trial.verdict == REFUSED:
        fix_it = (f"Check the key in memories.ai's dashboard, then open “{key.label}” and enter the right key "
                  "in its API key field.")
        if kept is not None:
            return (f"{named(key)} was saved inactive and marked failing: {sentence(trial.reason)} {named(kept)} "
                    f"stays the team's key. {fix_it}"), messages.ERROR
        if key.is_active:
            return (f"{named(key)} is marked failing: {sentence(trial.reason)} {now_active} The team's uploads "
                    f"wait until a key works. {WHAT_TO_DO}"), messages.ERROR
        return (f"{named(key)} was saved inactive and marked failing: {sentence(trial.reason)} {fix_it}",
                messages.ERROR)
    return f"{named(key)} was saved but {trial.reason}. {now_active} Run “Test key” on it later.", messages.WARNING


def save_and_resume(key, save):
    """Save a key; if that gave its team a usable key it lacked, the team's waiting videos move
    again, once. Editing a key that already worked (its label, say) enqueues nothing."""
    had_usable = key.team_id is not None and Team.objects.get(pk=key.team_id).usable_key() is not None
    save()
    if not had_usable and key.team.usable_key() is not None:
        tasks.perform(actions.resume_team_queue, key.team_id)
