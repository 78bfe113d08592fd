"""memories.ai API keys in the admin: entered in a password field, never shown again in full."""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from .. import actions, memories, tasks
from ..crypto import ApiKeyDecryptionError
from ..models import ApiKey, Team
from .scoping import TeamScopedAdmin


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


    @admin.action(description="Share one memories.ai account (these keys' uploads are paced together)")
    def share_account(self, request, queryset):
        if not request.user.is_superuser:
            return
        keys = list(queryset.order_by("pk"))
        if len(keys) < 2:
            self.message_user(request, "Select two or more keys of one memories.ai account.", messages.WARNING)
            return
        account_id = keys[0].pacing_account_id()
        ApiKey.objects.filter(pk__in=[key.pk for key in keys]).update(account_id=account_id)
        for key in keys:
            self.log_change(request, key, f"Put in memories.ai account {account_id} (one upload pace).")
        self.message_user(request, f"{len(keys)} keys now share one memories.ai account and one upload pace.")


def save_and_resume(key, save):
    """Save a key; if that gave its team a usable key it lacked, the team's waiting videos move
    again, once. Editing a key that already worked (its label, say) enqueues nothing."""
    had_usable = key.team_id is not None and Team.objects.get(pk=key.team_id).usable_key() is not None
    save()
    if not had_usable and key.team.usable_key() is not None:
        tasks.perform(actions.resume_team_queue, key.team_id)
