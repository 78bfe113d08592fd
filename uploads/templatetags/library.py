"""Template helpers of the video library."""

import html
import uuid

from django import template
from django.template.defaultfilters import filesizeformat
from django.template.defaulttags import CsrfTokenNode
from django.urls import reverse
from django.utils.dateformat import format as date_format
from django.utils.safestring import SafeString
from django.utils.timezone import get_current_timezone, localtime

from uploads.models import Team

register = template.Library()
ANY_ID = str(uuid.UUID(int=0))


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


# The rows of the video list (templates/uploads/video_list.html), written here rather than as a
# template: 25 rows of about 30 variables, filters and tags each were half the page's time in
# Django's template engine, the same markup written out by str.format a tenth of it
# (docs/benchmarks.md, "The video library"). Every value is escaped once, in video_rows().
ROW = """
    <tr data-video-id="{pk}" data-final="{final}">
      <td class="pick">{pick}</td>
      <td class="thumb" data-thumb>{thumb}</td>
      <td class="name"><a href="{detail_url}">{name}</a>
        {file_name}
        {rename}
        <small class="narrow">{team} · {size}{narrow_duration} · <time datetime="{iso}">{when}</time></small>
      </td>
      <td class="wide">{team}</td>
      {owner}
      <td class="wide">{size}</td>
      <td class="wide" data-duration>{duration}</td>
      <td class="wide"><time datetime="{iso}">{when}</time></td>
      <td class="state"><span class="status status-{status}" data-status="{status}">{label}</span>
        <small data-line>{line}</small>
      </td>
    </tr>
  """
PICK = ('<input type="checkbox" name="video" value="{pk}" form="bulk-form" id="pick-{pk}"'
        ' aria-label="Select “{name}”">')
THUMB = '<img src="{thumb_url}" alt="" width="96" height="54" loading="lazy">'
NO_THUMB = '<span class="thumb-none"></span>'
FILE_NAME = '<small class="file-name">{original_name}</small>'
RENAME = """
        <details class="rename"><summary>Rename<span class="visually-hidden"> “{name}”</span></summary>
          <form method="post" action="{rename_url}">{csrf}
            <input type="hidden" name="next" value="{here}">
            <label for="title-{pk}" class="visually-hidden">New title of “{name}”</label>
            <input type="text" name="title" id="title-{pk}" value="{title}" maxlength="200" placeholder="{original_name}">
            <button type="submit" class="small">Save</button>
          </form>
        </details>
        """
OWNER = '<td class="wide">{owner}</td>'
URLS = {"detail_url": "video-detail", "thumb_url": "video-thumbnail", "rename_url": "video-rename"}


def escape(value):
    """django.utils.html.escape without its lazy-string wrapper (a tenth of the rows' time): the same text."""
    return html.escape(str(value))


@register.simple_tag(takes_context=True)
def video_rows(context, videos, can_act, here, scope):
    """The table rows of `videos` (each with its `standing` set, `team` and, for Team videos,
    `owner` selected): a checkbox and a rename form on those in `can_act`, the owner column when
    `scope` is "team"."""
    urls = {key: reverse(name, args=[ANY_ID]) for key, name in URLS.items()}  # once: a reverse per row costs
    page = {"here": escape(here), "csrf": CsrfTokenNode().render(context)}  # the page's token, as {% csrf_token %}
    zone = get_current_timezone()  # the user's, as the |date filter converts to
    rows = []
    for video in videos:
        pk, standing, created_at, seconds = str(video.pk), video.standing, video.created_at, video.duration_seconds
        shown = {
            **page, "pk": pk, "name": escape(video.name), "title": escape(video.title),
            "original_name": escape(video.original_name), "team": escape(video.team),
            "size": escape(filesizeformat(video.size)), "duration": escape(duration(seconds)),
            "iso": escape(created_at.isoformat()),
            "when": escape(date_format(localtime(created_at, zone), "Y-m-d H:i T")),
            "status": escape(video.status), "label": escape(standing["label"]), "line": escape(standing["line"]),
            "final": "true" if standing["final"] else "false",
            **{key: escape(url.replace(ANY_ID, pk)) for key, url in urls.items()},
        }
        actionable = video.pk in can_act
        rows.append(ROW.format(
            **shown, pick=PICK.format(**shown) if actionable else "",
            thumb=THUMB.format(**shown) if video.thumbnail else NO_THUMB,
            file_name=FILE_NAME.format(**shown) if video.title else "",
            rename=RENAME.format(**shown) if actionable else "",
            narrow_duration=f" · {shown['duration']}" if seconds else "",
            owner=OWNER.format(owner=escape(video.owner)) if scope == "team" else ""))
    return SafeString("".join(rows))
