"""System checks: the configuration errors that would otherwise surface as a failed upload."""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .crypto import fernet
from .memories import FAMILIES
from .understanding import PATH_SETTINGS


@checks.register(checks.Tags.security)
def check_fernet_keys(app_configs, **kwargs):
    try:
        fernet()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="memportal.E001")]
    return []


@checks.register()
def check_memories_settings(app_configs, **kwargs):
    errors = []
    if not settings.MEMORIES_API_BASE_URL.startswith(("http://", "https://")):
        errors.append(checks.Error("MEMORIES_API_BASE_URL must start with http:// or https://", id="memportal.E002"))
    if settings.MEMORIES_API_FAMILY not in FAMILIES:
        errors.append(checks.Error(f"MEMORIES_API_FAMILY must be one of {', '.join(FAMILIES)}", id="memportal.E006"))
    for name in ("MEMORIES_UPLOAD_PATH", "MEMORIES_LIST_PATH", "MEMORIES_DELETE_PATH", "MEMORIES_V1_UPLOAD_PATH",
                 "MEMORIES_V1_LIST_PATH", "MEMORIES_V1_METADATA_PATH", "MEMORIES_V1_DELETE_PATH", *PATH_SETTINGS):
        if not getattr(settings, name).startswith("/"):
            errors.append(checks.Error(f"{name} must start with /", id="memportal.E003"))
    if settings.MEMPORTAL_PUBLIC_URL and not settings.MEMPORTAL_PUBLIC_URL.startswith(("http://", "https://")):
        errors.append(checks.Error("MEMPORTAL_PUBLIC_URL must start with http:// or https://", id="memportal.E004"))
    if settings.MEMPORTAL_HEARTBEAT_STALE_SECONDS <= settings.MEMORIES_READ_TIMEOUT:
        # The heartbeat stops while the relay waits for memories.ai's answer: a threshold below
        # the read timeout would re-queue live relays and send duplicates.
        errors.append(checks.Warning(
            "MEMPORTAL_HEARTBEAT_STALE_SECONDS should be larger than MEMORIES_READ_TIMEOUT, or "
            "reconcile re-queues relays still waiting for memories.ai's answer.", id="memportal.W002"))
    for name in ("MEMPORTAL_SEARCH_INTERVAL_SECONDS", "MEMPORTAL_CHAT_INTERVAL_SECONDS",
                 "MEMPORTAL_CHAT_QUESTIONS_PER_DAY"):
        if getattr(settings, name) < 0:
            errors.append(checks.Error(f"{name} must not be negative", id="memportal.E007"))
    for name in ("MEMPORTAL_ASK_STREAMS_MAX", "MEMPORTAL_ASK_VIDEOS_MAX"):
        if not 1 <= getattr(settings, name) <= (100 if name == "MEMPORTAL_ASK_VIDEOS_MAX" else 10 ** 4):
            errors.append(checks.Error(f"{name} must be at least 1 (memories.ai takes at most 100 videos a question)",
                                       id="memportal.E008"))
    if not 30 <= settings.MEMPORTAL_ASK_ANSWER_SECONDS <= 540:
        errors.append(checks.Error("MEMPORTAL_ASK_ANSWER_SECONDS must be from 30 to 540 (an answer streaming longer "
                                   "would outlive the 10 minutes after which the stream cap counts it as dead)",
                                   id="memportal.E008"))
    if settings.MEMPORTAL_STORAGE == "s3" and not settings.STORAGES["default"]["OPTIONS"]["bucket_name"]:
        errors.append(checks.Error("MEMPORTAL_STORAGE=s3 needs MEMPORTAL_S3_BUCKET", id="memportal.E005"))
    return errors


@checks.register(checks.Tags.security, deploy=True)
def check_public_url_is_https(app_configs, **kwargs):
    if settings.MEMPORTAL_PUBLIC_URL.startswith("http://"):
        return [checks.Warning(
            "MEMPORTAL_PUBLIC_URL is plain http: callback tokens would cross the network in clear text.",
            id="memportal.W001")]
    return []
