"""What only an operator (a superuser) sees in the admin: the hold on every team's relays."""

from django.contrib import admin

from .. import actions, tasks
from ..models import RelayHold


@admin.register(RelayHold)
class RelayHoldAdmin(admin.ModelAdmin):
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
