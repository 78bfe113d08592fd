"""Template helpers of search and asking (issue 14)."""

from django import template

from uploads.transcripts import enabled

register = template.Library()


@register.simple_tag
def understanding_on():
    """`{% understanding_on as on %}`: whether search, asking and transcripts are switched on."""
    return enabled()
