"""Videos, their timelines and their callbacks in the admin: read-only rows, and the actions a
team admin runs on many videos at once."""

from django.contrib import admin

from .. import actions, removal, reports, tasks
from ..models import CallbackRecord, Video, VideoEvent
from .scoping import ManageVideosMixin, ReadOnlyAdmin, ScopedOwnerFilter, TeamListFilter

Source = VideoEvent.Source


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


@admin.register(Video)
class VideoAdmin(ManageVideosMixin, ReadOnlyAdmin):
    list_display = ["display_name", "team", "owner", "status", "remote_status", "video_no", "size", "created_at"]
    list_filter = ["status", ScopedOwnerFilter, "created_at"]
    search_fields = ["title", "original_name", "video_no"]
    date_hierarchy = "created_at"
    inlines = [VideoEventInline]
    exclude = ["callback_digest", "callback_generation", "relay_token", "check_token"]
    actions = ["retry_videos", "cancel_videos", "delete_videos", "rotate_callbacks"]

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

    @admin.action(description="Rotate the callback address (it leaked)", permissions=["manage"])
    def rotate_callbacks(self, request, queryset):
        pks = list(queryset.values_list("pk", flat=True))
        for pk in pks:
            tasks.perform(actions.rotate_callback, pk, request.user, Source.ADMIN)
        self.message_user(request, f"{len(pks)} callback address(es) rotated: the old ones no longer work. "
                                   "memories.ai keeps the address it was given, so status checks bring these "
                                   "videos' status from now on.")

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
