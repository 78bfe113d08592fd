"""The upload form and the checks each file must pass before it is stored, in the words every
path says them with: the form, the resumable endpoint (uploads/tus.py) and the browser's checks
before a byte is sent (static/memportal/upload.js gets them from `browser_wording`)."""

from pathlib import PurePath

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

# Extension -> (container name, content type sent to memories.ai). The browser's content type
# is not trusted: it is derived from the checked extension.
CONTAINERS = {
    ".mp4": ("an MP4 video", "video/mp4"),
    ".mov": ("a QuickTime (MOV) video", "video/quicktime"),
    ".mkv": ("a Matroska (MKV) video", "video/x-matroska"),
    ".avi": ("an AVI video", "video/x-msvideo"),
}
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
# Old QuickTime files may open with one of these atoms instead of `ftyp`.
QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip"}

NOT_ACCEPTED = "“{name}” was not accepted: {reason}."
ONLY_VIDEOS = "only .mp4, .mov, .mkv and .avi videos are accepted"
EMPTY = "the file is empty"
SIGNED_OUT = "Your session ended: sign in again, and the upload goes on from where it stopped."


def not_accepted(name, reason):
    return NOT_ACCEPTED.format(name=name, reason=reason)


def not_its_container(extension):
    return f"its content is not {CONTAINERS[extension][0]}, whatever its name says"


def too_large(limit):
    return f"it is larger than the limit of {filesizeformat(limit)}"


def too_many_in_flight(count):
    return (f"you have {count} uploads under way, the most one person may have at once: "
            "let one finish or cancel one, then try again")


def too_many_chosen(most):
    return f"one selection may hold at most {most} files: pick at most {most} at a time and try again"


def browser_wording(max_bytes, files_per_selection):
    """The refusals the upload page's script says before sending anything: these very sentences
    ("{count}" is filled in by the page)."""
    return {
        "not_accepted": NOT_ACCEPTED, "only_videos": ONLY_VIDEOS, "empty": EMPTY,
        "not_its_container": {extension: not_its_container(extension) for extension in CONTAINERS},
        "too_large": too_large(max_bytes), "too_many_chosen": too_many_chosen(files_per_selection),
        "too_many_in_flight": too_many_in_flight("{count}"), "signed_out": SIGNED_OUT,
    }


def container_matches(extension: str, head: bytes) -> bool:
    if extension == ".mp4":
        return head[4:8] == b"ftyp"
    if extension == ".mov":
        return head[4:8] == b"ftyp" or head[4:8] in QUICKTIME_ATOMS
    if extension == ".avi":
        return head[0:4] == b"RIFF" and head[8:12] == b"AVI "
    if extension == ".mkv":
        return head[0:4] == EBML_MAGIC
    return False


def refusal_reason(uploaded) -> str | None:
    """Why this file cannot be accepted, in words for the user; None if it is fine."""
    extension = PurePath(uploaded.name).suffix.lower()
    if extension not in CONTAINERS:
        return ONLY_VIDEOS
    if uploaded.size == 0:
        return EMPTY
    uploaded.seek(0)
    head = uploaded.read(16)
    uploaded.seek(0)
    if not container_matches(extension, head):
        return not_its_container(extension)
    return None


def content_type_for(name: str) -> str:
    return CONTAINERS[PurePath(name).suffix.lower()][1]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Hands the view every chosen file; each is then checked on its own, so one bad file
    does not refuse the others."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ",".join(CONTAINERS)}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        # FileField.clean would refuse the whole form for one empty file; refusal_reason()
        # judges each file instead.
        if isinstance(data, (list, tuple)):
            return [item for item in data if item]
        return [data] if data else []


class UploadForm(forms.Form):
    files = MultipleFileField(label="Video files", required=False)
    title = forms.CharField(max_length=200, required=False,
                            help_text="Optional. With several files, each gets this title and its number.")
    team = forms.ModelChoiceField(queryset=None, empty_label=None)

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["files"].help_text = ("MP4, MOV, MKV or AVI; you can pick several "
                                          f"(up to {settings.MEMPORTAL_FILES_PER_SELECTION} at once).")
        self.fields["team"].queryset = teams
        if len(teams) == 1:
            # One team: nothing to choose, so no field to tamper with.
            del self.fields["team"]
            self.only_team = teams[0]

    def clean(self):
        cleaned = super().clean()
        if "team" not in self.fields:
            cleaned["team"] = self.only_team
        return cleaned
