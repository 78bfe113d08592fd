"""Template helpers of the video library."""

from django import template

from uploads.models import Team

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


@register.simple_tag(takes_context=True)
def administers_a_team(context):
    """Whether the signed-in user may open "Team videos" (team admins are staff: members cost no query)."""
    user = getattr(context.get("request"), "user", None)
    return bool(user and user.is_staff and Team.objects.administered_by(user).exists())
