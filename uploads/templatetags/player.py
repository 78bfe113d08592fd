"""The video page's player (templates/uploads/_player.html): what it shows, from uploads/playback.py."""

from django import template

from uploads.playback import player_for

register = template.Library()


@register.simple_tag
def player(video):
    """`{% player video as player %}`: a playback.Player (mode "play", "fallback" or "removed")."""
    return player_for(video)
