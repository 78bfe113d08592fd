"""Resumable uploads still arriving (uploads/resumable.py), read-only: whose, for which team, how
much the server has, until when; and the action that discards the chosen ones (as the uploader's
Cancel does: fenced, the bytes removed, then the row). Superusers see every team's; a team admin
would see only their teams' (TeamScopedAdmin) once given the view and discard permissions."""

from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from .. import resumable
from ..models import PartialUpload, Team
from .scoping import ReadOnlyAdmin, TeamListFilter


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("unfinished", "Unfinished"), ("finished", "Finished (a video now)")]

    def queryset(self, request, queryset):
        if self.value() == "unfinished":
            return queryset.filter(finished_at__isnull=True)
        if self.value() == "finished":
            return queryset.filter(finished_at__isnull=False)
        return queryset


@admin.register(PartialUpload)
class PartialUploadAdmin(ReadOnlyAdmin):
    list_display = ["filename", "owner", "team", "length", "offset", "received", "expires_at", "state"]
    list_filter = [StateFilter, "backend"]
    search_fields = ["filename", "title", "owner__username"]
    date_hierarchy = "created_at"
    fields = ["filename", "title", "owner", "team", "length", "offset", "content_type", "backend", "storage_name",
              "created_at", "updated_at", "expires_at", "finished_at", "video_uuid"]
    readonly_fields = fields
    actions = ["discard_uploads"]

    def has_delete_permission(self, request, obj=None):
        return False  # deleting the row would leave its bytes: the "Discard" action removes both

    def has_discard_permission(self, request):
        return request.user.is_superuser or Team.objects.administered_by(request.user).exists()

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner", "team")

    def get_list_filter(self, request):
        filters = list(self.list_filter)
        return filters + [TeamListFilter] if request.user.is_superuser else filters

    @admin.display(description="received")
    def received(self, upload):
        percent = upload.offset * 100 // upload.length if upload.length else 100
        return f"{percent} % ({filesizeformat(upload.offset)} of {filesizeformat(upload.length)})"

    @admin.display(description="state")
    def state(self, upload):
        if upload.finished_at is not None:
            return "finished (a video now)"
        if upload.writer == PartialUpload.GONE:
            return "being removed"
        return "unfinished"

    @admin.action(description="Discard (cancel the upload and remove the bytes the server has)",
                  permissions=["discard"])
    def discard_uploads(self, request, queryset):
        done = failed = 0
        for upload in queryset.filter(finished_at__isnull=True):  # scoped: only the viewer's teams' rows
            try:
                resumable.terminate(upload)
                done += 1
            except resumable.UploadError:
                pass  # finished or removed meanwhile
            except resumable.STORAGE_ERRORS:
                failed += 1  # fenced: the clock's sweep removes it
        self.message_user(request, f"{done} upload(s) discarded, their bytes removed." +
                          (f" {failed} could not be removed now: the clock removes them." if failed else ""))
