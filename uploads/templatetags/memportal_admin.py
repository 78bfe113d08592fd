"""Admin template helpers: the failing-key banner shown to team admins."""

from django import template

from uploads.models import ApiKey, RelayHold, Team

register = template.Library()


@register.simple_tag(takes_context=True)
def failing_keys(context):
    """Failing active keys of the teams the signed-in user administers."""
    request = context.get("request")
    if request is None:
        return ApiKey.objects.none()
    return ApiKey.objects.filter(is_active=True, failing_since__isnull=False,
                                 team__in=Team.objects.administered_by(request.user)).select_related("team")


@register.filter
def sentence(text):
    """A reason as one sentence: it ends with exactly one full stop (or its own ? or !)."""
    text = str(text).strip()
    return text if text.endswith((".", "?", "!")) else f"{text}."


@register.simple_tag
def relay_hold():
    """The hold on every team's relays, if one is in force (shown to every admin user)."""
    return RelayHold.in_force()
