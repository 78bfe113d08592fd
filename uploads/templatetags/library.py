"""Template helpers of the video library."""

from django import template

register = template.Library()


@register.filter
def duration(seconds):
    """A duration as a clock reads: 0:42, 4:05, 1:02:03; "" when unknown."""
    if seconds is None:
        return ""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
