"""What only an operator (a superuser) sees in the admin: the hold on every team's relays, the
memories.ai accounts whose keys share one upload pace, and the audit trail."""

from django.contrib import admin
from django.utils import timezone

from .. import actions, tasks
from ..models import ApiKey, AuditEvent, MemoriesAccount, RelayHold
from .lookups import SafeLookupsAdmin


@admin.register(RelayHold)
class RelayHoldAdmin(SafeLookupsAdmin):
    """Superusers only (team admins have no permission on it): the switch memories.ai's answers
    set when a setting looks wrong, and the action that clears it."""

    list_display = ["since", "reason", "cleared_at", "cleared_by"]
    readonly_fields = list_display
    actions = ["clear_holds"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Clear the hold and resume every team's relays")
    def clear_holds(self, request, queryset):
        if not request.user.is_superuser:
            return
        resumed = tasks.perform(actions.clear_relay_hold, request.user)
        self.message_user(request, f"Relays resumed: {resumed} waiting video(s) queued again.")


class AccountKeysInline(admin.TabularInline):
    model = ApiKey
    fields = ["label", "team", "masked", "is_active"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(MemoriesAccount)
class MemoriesAccountAdmin(SafeLookupsAdmin):
    """Superusers only: a memories.ai account and its keys, which share one upload slot (keys
    with the same fingerprint join it when saved; "Share one memories.ai account" on the key
    list puts different keys of one account together)."""

    list_display = ["__str__", "key_count", "next_upload", "upload_backoff_level", "created_at"]
    fields = ["name", "next_upload_at", "upload_backoff_level", "created_at"]
    readonly_fields = ["next_upload_at", "upload_backoff_level", "created_at"]
    inlines = [AccountKeysInline]

    def has_add_permission(self, request):
        return False

    @admin.display(description="keys")
    def key_count(self, account):
        return account.api_keys.count()

    @admin.display(description="next upload not before")
    def next_upload(self, account):
        if account.next_upload_at is None or account.next_upload_at <= timezone.now():
            return "now"
        return timezone.localtime(account.next_upload_at).strftime("%H:%M:%S")


@admin.register(AuditEvent)
class AuditEventAdmin(SafeLookupsAdmin):
    """Superusers only, read-only: who did what, when, from where (never a secret)."""

    list_display = ["at", "actor_name", "action", "subject", "team", "client_address", "detail"]
    list_filter = ["action", "at"]
    search_fields = ["actor_name", "subject", "detail", "client_address"]
    date_hierarchy = "at"
    readonly_fields = ["at", "actor", "actor_name", "action", "subject", "team", "client_address", "detail"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
