"""A person's own settings (time zone, emails about their videos) and the notices feed
(a stub: being written)."""

from django.http import Http404


def profile(request):
    raise Http404


def notices(request):
    raise Http404
