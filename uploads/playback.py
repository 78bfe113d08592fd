"""The stored copy played in the browser and its thumbnail, served only to people who may see the
video (a stub: being written)."""

from django.http import Http404


def media(request, video_id):
    raise Http404


def thumbnail(request, video_id):
    raise Http404
