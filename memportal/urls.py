"""URLs: the pages, the callback, the admin and /healthz."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView

from uploads import account, ask_views, callbacks, library, playback, search, tus, views
from uploads.password_reset import ThrottledPasswordResetForm

admin.site.site_header = "memportal administration"
admin.site.site_title = "memportal admin"
handler400 = views.bad_request

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="video-list", permanent=False)),
    path("videos/", library.my_videos, name="video-list"),
    path("videos/team/", library.team_videos, name="team-videos"),
    path("videos/states/", library.video_states, name="video-states"),
    path("videos/bulk/", library.bulk_action, name="video-bulk"),
    path("videos/duplicates/", views.video_duplicates, name="video-duplicates"),
    path("videos/upload/", views.upload, name="upload"),
    path("videos/<uuid:video_id>/", views.video_detail, name="video-detail"),
    path("videos/<uuid:video_id>/rename/", library.rename, name="video-rename"),
    path("videos/<uuid:video_id>/media/", playback.media, name="video-media"),
    path("videos/<uuid:video_id>/thumbnail/", playback.thumbnail, name="video-thumbnail"),
    path("videos/<uuid:video_id>/retry/", views.video_retry, name="video-retry"),
    path("videos/<uuid:video_id>/cancel/", views.video_cancel, name="video-cancel"),
    path("videos/<uuid:video_id>/delete/", views.video_delete, name="video-delete"),
    path("videos/<uuid:video_id>/check/", views.video_check_now, name="video-check"),
    path("videos/<uuid:video_id>/transcript/refresh/", views.video_transcript_refresh, name="video-transcript-refresh"),
    # The resumable upload endpoint (tus): exempt from the sign-in redirect, it answers 401 itself.
    path("uploads/tus/", tus.collection, name="tus-collection"),
    path("uploads/tus/<uuid:upload_id>/", tus.resource, name="tus-upload"),
    path("callbacks/memories/<str:token>/", login_not_required(callbacks.memories_callback),
         name="memories-callback"),
    path("search/", search.page, name="search"),
    path("ask/", ask_views.ask, name="ask"),
    path("ask/about/", ask_views.ask_about, name="ask-about"),
    path("conversations/", ask_views.conversations, name="conversations"),
    path("conversations/<uuid:conversation_id>/", ask_views.conversation, name="conversation"),
    path("account/", account.profile, name="profile"),
    path("notices/", account.notices, name="notices"),
    path("healthz", login_not_required(views.healthz), name="healthz"),
    path("accounts/password_reset/", auth_views.PasswordResetView.as_view(form_class=ThrottledPasswordResetForm),
         name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
