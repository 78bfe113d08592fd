"""The Django admin, scoped: superusers see everything, team admins only their own teams.

Every ModelAdmin here derives from TeamScopedAdmin, which filters rows by the teams the user
administers (Team.objects.administered_by), checks each object's team before showing, changing
or deleting it, and limits foreign-key choices the same way. A ModelAdmin added later inherits
this, and tests/test_admin_scoping.py walks every registered ModelAdmin to prove it.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from . import actions, memories, removal, reports, tasks
from .crypto import ApiKeyDecryptionError
from .models import ApiKey, CallbackRecord, Membership, Team, Video, VideoEvent

Source = VideoEvent.Source


class TeamScopedAdmin(admin.ModelAdmin):
    # The lookup from this model to its Team ("" for Team itself).
    team_path = "team"

    def administered_teams(self, request):
        return Team.objects.administered_by(request.user)

    def scope(self, request, queryset):
        if request.user.is_superuser:
            return queryset
        teams = self.administered_teams(request)
        if self.team_path:
            return queryset.filter(**{f"{self.team_path}__in": teams})
        return queryset.filter(pk__in=teams)

    def get_queryset(self, request):
        return self.scope(request, super().get_queryset(request))

    def in_scope(self, request, obj):
        return obj is None or self.scope(request, type(obj)._default_manager.filter(pk=obj.pk)).exists()

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self.in_scope(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.in_scope(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.in_scope(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Team and not request.user.is_superuser:
            kwargs["queryset"] = teams = self.administered_teams(request)
            if len(teams) == 1:
                kwargs["empty_label"] = None  # one team: it is the choice
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ScopedOwnerFilter(admin.SimpleListFilter):
    """Filter by member, offering only the owners of videos the user may see."""

    title = "member"
    parameter_name = "owner"

    def lookups(self, request, model_admin):
        owners = get_user_model().objects.filter(
            videos__in=model_admin.get_queryset(request)).distinct().order_by("username")
        return [(str(user.pk), user.get_username()) for user in owners]

    def queryset(self, request, queryset):
        return queryset.filter(owner_id=self.value()) if self.value() else queryset


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(TeamScopedAdmin):
    team_path = ""
    list_display = ["name", "slug", "member_count", "key_state", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def get_inlines(self, request, obj):
        return [MembershipInline] if request.user.is_superuser else []

    def get_readonly_fields(self, request, obj=None):
        if request.user.is_superuser:
            return ["next_upload_at", "upload_backoff_level"]
        return ["slug", "created_at"]

    def get_fields(self, request, obj=None):
        if request.user.is_superuser:
            return ["name", "slug", "created_at", "next_upload_at", "upload_backoff_level"]
        return ["name", "slug", "created_at"]

    def get_prepopulated_fields(self, request, obj=None):
        return self.prepopulated_fields if request.user.is_superuser else {}

    @admin.display(description="members")
    def member_count(self, team):
        return team.memberships.count()

    @admin.display(description="memories.ai key")
    def key_state(self, team):
        key = team.api_keys.filter(is_active=True).first()
        if key is None:
            return "no active key"
        return f"{key.masked} failing" if key.is_failing else f"{key.masked} OK"


class MembershipForm(forms.ModelForm):
    """A team admin names an existing user by username: no list of all users is shown."""

    username = forms.CharField(help_text="The username of an existing user.")

    class Meta:
        model = Membership
        fields = ["team", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["username"].initial = self.instance.user.get_username()
            self.fields["username"].disabled = True

    def clean_username(self):
        if self.instance.pk:
            return self.instance.user.get_username()
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError("There is no active user with this username.")
        self.user = user
        return username

    def clean(self):
        cleaned = super().clean()
        user = getattr(self, "user", None)
        if user and cleaned.get("team") and Membership.objects.filter(user=user, team=cleaned["team"]).exists():
            raise forms.ValidationError("This user is already a member of that team.")
        return cleaned

    def save(self, commit=True):
        if not self.instance.pk:
            self.instance.user = self.user
        return super().save(commit)


@admin.register(Membership)
class MembershipAdmin(TeamScopedAdmin):
    form = MembershipForm
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "user__email"]

    def get_readonly_fields(self, request, obj=None):
        # Moving a membership to another team is a removal plus an addition: do those.
        return ["team"] if obj else []

    def get_list_filter(self, request):
        return ["role", TeamListFilter] if request.user.is_superuser else ["role"]


class TeamListFilter(admin.SimpleListFilter):
    """Filter by team, along the ModelAdmin's own team_path (superusers only)."""

    title = "team"
    parameter_name = "team"

    def __init__(self, request, params, model, model_admin):
        self.team_path = model_admin.team_path
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return [(str(t.pk), t.name) for t in Team.objects.administered_by(request.user)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{f"{self.team_path}_id": self.value()})
        return queryset


class ApiKeyForm(forms.ModelForm):
    secret = forms.CharField(
        label="API key", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="The memories.ai key. It is stored encrypted and never shown again; "
                  "leave empty to keep the current one.",
    )

    class Meta:
        model = ApiKey
        fields = ["team", "label", "secret", "is_active"]

    def clean_secret(self):
        secret = self.cleaned_data.get("secret", "")
        if not secret and not self.instance.pk:
            raise forms.ValidationError("Enter the API key.")
        if any(ch.isspace() for ch in secret):
            raise forms.ValidationError("An API key has no spaces in it.")
        return secret

    def save(self, commit=True):
        if self.cleaned_data.get("secret"):
            self.instance.set_secret(self.cleaned_data["secret"])
            # A new secret deserves a fresh start.
            self.instance.failing_since = None
            self.instance.last_error = ""
        return super().save(commit)


@admin.register(ApiKey)
class ApiKeyAdmin(TeamScopedAdmin):
    form = ApiKeyForm
    list_display = ["label", "team", "masked_key", "is_active", "state", "created_by", "created_at",
                    "last_used_at"]
    list_filter = ["is_active"]
    search_fields = ["label"]
    readonly_fields = ["masked_key", "created_by", "created_at", "last_used_at", "failing_since", "last_error"]
    actions = ["test_keys", "reenable_keys", "deactivate_keys"]

    def get_fields(self, request, obj=None):
        fields = ["team", "label", "secret", "is_active"]
        return fields + self.readonly_fields if obj else fields

    def get_readonly_fields(self, request, obj=None):
        return ["team", *self.readonly_fields] if obj else []

    @admin.display(description="key")
    def masked_key(self, key):
        return key.masked

    @admin.display(description="state")
    def state(self, key):
        if key.is_failing:
            return format_html('<span class="memportal-failing">failing since {}: {}</span>',
                               timezone.localtime(key.failing_since).strftime("%Y-%m-%d %H:%M"), key.last_error)
        return "OK"

    @method_decorator(sensitive_post_parameters("secret"))  # error reports never show the key
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        save_and_resume(obj, lambda: super(ApiKeyAdmin, self).save_model(request, obj, form, change))

    @admin.action(description="Test key (ask memories.ai's list_videos)")
    def test_keys(self, request, queryset):
        for key in queryset:
            try:
                memories.list_videos(key.reveal())
            except memories.MemoriesError as error:
                self.message_user(request, f"{key}: {error}", messages.ERROR)
            except ApiKeyDecryptionError as error:
                self.message_user(request, f"{key}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{key}: OK, memories.ai accepted it.", messages.SUCCESS)

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


def save_and_resume(key, save):
    """Save a key; if that gave its team a usable key it lacked, the team's waiting videos move
    again, once. Editing a key that already worked (its label, say) enqueues nothing."""
    had_usable = key.team_id is not None and Team.objects.get(pk=key.team_id).usable_key() is not None
    save()
    if not had_usable and key.team.usable_key() is not None:
        tasks.perform(actions.resume_team_queue, key.team_id)


class ReadOnlyAdmin(TeamScopedAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)


class VideoEventInline(admin.TabularInline):
    model = VideoEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "source", "from_status", "to_status", "remote_status", "message", "actor"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ManageVideosMixin:
    """Actions a team admin runs on many of the team's videos at once (scoped like every row)."""

    def has_manage_permission(self, request):
        return request.user.is_superuser or Team.objects.administered_by(request.user).exists()


@admin.register(Video)
class VideoAdmin(ManageVideosMixin, ReadOnlyAdmin):
    list_display = ["display_name", "team", "owner", "status", "remote_status", "video_no", "size", "created_at"]
    list_filter = ["status", ScopedOwnerFilter, "created_at"]
    search_fields = ["title", "original_name", "video_no"]
    date_hierarchy = "created_at"
    inlines = [VideoEventInline]
    exclude = ["callback_digest", "relay_token", "check_token"]
    actions = ["retry_videos", "cancel_videos", "delete_videos"]

    def has_delete_permission(self, request, obj=None):
        return False  # videos are soft-deleted by the "Delete" action, never removed from the database

    @admin.action(description="Retry (failed or rejected videos)", permissions=["manage"])
    def retry_videos(self, request, queryset):
        done = sum(tasks.perform(actions.retry, pk, request.user, Source.ADMIN)
                   for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{done} of {queryset.count()} video(s) queued again.")

    @admin.action(description="Cancel (queued videos)", permissions=["manage"])
    def cancel_videos(self, request, queryset):
        done = sum(tasks.perform(actions.cancel, pk, request.user, Source.ADMIN)
                   for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{done} of {queryset.count()} video(s) cancelled.")

    @admin.action(description="Delete (here and at memories.ai)", permissions=["manage"])
    def delete_videos(self, request, queryset):
        result = removal.delete_videos(list(queryset.values_list("pk", flat=True)), request.user, Source.ADMIN)
        tasks.enqueue(result.work)
        deleted = result.value
        self.message_user(request, f"{len(deleted)} video(s) deleted; memories.ai is asked to delete its copies.")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(deleted_at__isnull=True).select_related("team", "owner")

    def get_list_filter(self, request):
        filters = list(self.list_filter)
        return filters + [TeamListFilter] if request.user.is_superuser else filters


@admin.register(VideoEvent)
class VideoEventAdmin(ReadOnlyAdmin):
    team_path = "video__team"
    list_display = ["created_at", "video", "source", "from_status", "to_status", "remote_status", "message"]
    list_filter = ["source"]
    search_fields = ["video__title", "video__original_name", "video__video_no"]


@admin.register(CallbackRecord)
class CallbackRecordAdmin(ManageVideosMixin, ReadOnlyAdmin):
    team_path = "video__team"
    list_display = ["received_at", "video", "video_no", "remote_status", "outcome", "remote_addr"]
    list_filter = ["outcome"]
    search_fields = ["video_no", "video__title", "video__original_name"]
    actions = ["replay_callbacks"]

    @admin.action(description="Replay (apply again; for records that failed to apply)", permissions=["manage"])
    def replay_callbacks(self, request, queryset):
        outcomes = [reports.apply_callback(pk) for pk in queryset.filter(video__isnull=False)
                    .exclude(video_no="").values_list("pk", flat=True)]
        summary = ", ".join(f"{outcomes.count(o)} {o}" for o in sorted(set(outcomes))) or "nothing to replay"
        self.message_user(request, f"Replayed: {summary}.")

