"""Settings for memportal: one file, read from the environment.

Every variable an operator may set is listed in the README with its default. Development
defaults are safe on a laptop; `manage.py check --deploy` refuses the unsafe ones in production
(see uploads/checks.py).
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from memportal.env import envbool, envfloat, envint, envlist, envstr, load_local_env
from memportal.logging_config import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MEMPORTAL_VAR_DIR", BASE_DIR / "var"))
# Every process of the portal loads these settings: what it creates under var/ (the SQLite file,
# stored videos, temporary uploads, folders) is readable by its own group at most, never by others.
os.umask(0o027)


load_local_env(VAR_DIR / "secrets.env")

DEBUG = envbool("DJANGO_DEBUG", False)
if not DEBUG:
    # Production starts only with these, all missing ones named at once. MEMPORTAL_PUBLIC_URL
    # must be set, and may be set empty: no callbacks, status checks do the work.
    _missing = [name for name in ("DJANGO_SECRET_KEY", "MEMPORTAL_FERNET_KEYS", "DJANGO_ALLOWED_HOSTS")
                if not envlist(name)]
    _missing += [] if "MEMPORTAL_PUBLIC_URL" in os.environ else ["MEMPORTAL_PUBLIC_URL"]
    if _missing:
        raise ImproperlyConfigured(
            f"Set {', '.join(_missing)} (or DJANGO_DEBUG=true for development; MEMPORTAL_PUBLIC_URL may be "
            "empty: then no callbacks, status checks do the work). See docs/deploy.md.")
SECRET_KEY = envstr("DJANGO_SECRET_KEY") or "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks_db",
    "axes",
    "uploads",
]

MIDDLEWARE = [
    "memportal.middleware.RequestIdMiddleware",  # first: every line of the request carries its id
    "django.middleware.security.SecurityMiddleware",
    "memportal.middleware.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "memportal.middleware.AuditContextMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "memportal.sessions.SessionLifetimeMiddleware",
    "memportal.middleware.TimeZoneMiddleware",  # the signed-in user's zone (their profile), else TIME_ZONE
    # Before anything parses a body (memportal/middleware.py): its size, then the sign-in
    # requirement, and only then the CSRF check, which reads request.POST.
    "memportal.middleware.RequestBodyLimitMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Inside the user (for its page) and inside the headers below (CSP, X-Frame-Options), which
    # its page gets as any other.
    "memportal.middleware.MethodNotAllowedPageMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it answers a locked-out sign-in
]

ROOT_URLCONF = "memportal.urls"
WSGI_APPLICATION = "memportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]

# SQLite by default, shared by the web and worker processes: WAL lets readers run beside the
# one writer, IMMEDIATE takes the write lock at BEGIN (no deadlock upgrading a read lock) and
# the busy timeout makes a writer wait instead of failing with "database is locked".
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'memportal.sqlite3'}",
        conn_max_age=envint("MEMPORTAL_DB_CONN_MAX_AGE", 60), conn_health_checks=True,
        # Behind PgBouncer in transaction mode a server-side cursor (QuerySet.iterator()) would
        # outlive its server connection (docs/deploy.md, "Database connections").
        disable_server_side_cursors=envbool("MEMPORTAL_DB_TRANSACTION_POOLER", False),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = SQLITE_OPTIONS
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Tests that run a real worker process need the test database in a file, not in memory.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-memportal.sqlite3")}
if envstr("MEMPORTAL_TEST_DB_NAME"):
    # Set by tests/testenv.py, so two test runs on one machine never share a database.
    DATABASES["default"]["TEST"] = {"NAME": envstr("MEMPORTAL_TEST_DB_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default", "relay"],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"

# Mail (password reset; the outcome emails people opt in to, uploads/mail.py). SMTP by default, with
# STARTTLS (port 587) or implicit TLS (_SSL, port 465); `make demo` prints mails on its console.
_MAIL_BACKEND = envstr("MEMPORTAL_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
MAILERS = {"default": {"BACKEND": _MAIL_BACKEND, "OPTIONS": {
    "host": envstr("MEMPORTAL_EMAIL_HOST", "localhost"), "port": envint("MEMPORTAL_EMAIL_PORT", 25),
    "username": envstr("MEMPORTAL_EMAIL_USER"), "password": envstr("MEMPORTAL_EMAIL_PASSWORD"),
    "use_tls": envbool("MEMPORTAL_EMAIL_STARTTLS", False), "use_ssl": envbool("MEMPORTAL_EMAIL_SSL", False),
    "timeout": envint("MEMPORTAL_EMAIL_TIMEOUT", 30),
} if _MAIL_BACKEND.endswith(".smtp.EmailBackend") else {}}}
DEFAULT_FROM_EMAIL = envstr("MEMPORTAL_EMAIL_FROM", "memportal@localhost")
# Where people open the portal, for the links in the workers' emails; empty: MEMPORTAL_PUBLIC_URL.
MEMPORTAL_SITE_URL = envstr("MEMPORTAL_SITE_URL").rstrip("/")
# Reset requests an hour, per client address and per e-mail address (uploads/password_reset.py).
MEMPORTAL_RESET_PER_ADDRESS = envint("MEMPORTAL_RESET_PER_ADDRESS", 5)
MEMPORTAL_RESET_PER_EMAIL = envint("MEMPORTAL_RESET_PER_EMAIL", 3)

# Sign-in throttling (django-axes, database handler: every process shares the counts). A username
# or a client address with AXES_FAILURE_LIMIT failures in a row is locked out for the cool-off,
# on the portal's sign-in and the admin's alike: at most 10 failures per 15 minutes, 40 an hour
# per account (ASVS 4.0.3 V2.2.1 asks for no more than 100). A success resets the count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("MEMPORTAL_SIGNIN_FAILURES", 10)
AXES_COOLOFF_TIME = timedelta(seconds=envint("MEMPORTAL_SIGNIN_COOLOFF_SECONDS", 15 * 60))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: one address, or one account
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "memportal.middleware.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
LOGIN_REDIRECT_URL = "video-list"
LOGOUT_REDIRECT_URL = None  # sign-out answers with "You are signed out" (registration/logged_out.html)

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("MEMPORTAL_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"  # no route serves it: stored videos are never served by the web process

MEMPORTAL_STORAGE = envstr("MEMPORTAL_STORAGE", "local")
if MEMPORTAL_STORAGE == "s3":
    VIDEO_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": envstr("MEMPORTAL_S3_BUCKET"),
            "endpoint_url": envstr("MEMPORTAL_S3_ENDPOINT_URL") or None,
            "region_name": envstr("MEMPORTAL_S3_REGION") or None,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
            # The relay streams an object's body and the probe reads ranges (uploads/tasks.py):
            # nothing reads a video through S3File, which downloads the whole object first.
            # Should anything, it spools to disk past 8 MiB instead of holding it in memory.
            "max_memory_size": 8 * 1024 * 1024,
        },
    }
elif MEMPORTAL_STORAGE == "local":
    VIDEO_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": None},
    }
else:
    raise ImproperlyConfigured("MEMPORTAL_STORAGE must be 'local' or 's3'.")
STORAGES = {
    "default": VIDEO_STORAGE,
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if envbool("MEMPORTAL_STATIC_MANIFEST", not DEBUG)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Without a manifest (development, tests) whitenoise serves straight from the app folders.
WHITENOISE_USE_FINDERS = not envbool("MEMPORTAL_STATIC_MANIFEST", not DEBUG)

# Uploads: the size limit is enforced by a handler while the body streams in (the CSRF
# middleware parses the body before any view could swap handlers), and every file goes to a
# temporary file under var/ (not RAM-backed /tmp) so FileSystemStorage can move it into place.
FILE_UPLOAD_HANDLERS = ["uploads.upload_handlers.VideoUploadHandler"]
FILE_UPLOAD_TEMP_DIR = Path(os.environ.get("MEMPORTAL_UPLOAD_TEMP_DIR", VAR_DIR / "tmp"))
FILE_UPLOAD_TEMP_DIR.mkdir(parents=True, exist_ok=True)
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
# Files per request: the upload handler counts them against MEMPORTAL_FILES_PER_SELECTION (below).
DATA_UPLOAD_MAX_NUMBER_FILES = None
MEMPORTAL_MAX_UPLOAD_BYTES = envint("MEMPORTAL_MAX_UPLOAD_BYTES", 3 * 1000**3)
# One request of a signed-in user, all its files together (declared length, checked before the
# body is read); an anonymous client's (the sign-in form, a callback) is far smaller.
MEMPORTAL_MAX_REQUEST_BYTES = envint("MEMPORTAL_MAX_REQUEST_BYTES", MEMPORTAL_MAX_UPLOAD_BYTES + 1024**2)
# What one team's videos may keep on the portal's storage at once (0: no limit).
MEMPORTAL_TEAM_STORAGE_BYTES = envint("MEMPORTAL_TEAM_STORAGE_BYTES", 0)
# Resumable uploads (tus, uploads/tus.py and uploads/resumable.py): the browser sends a file in
# chunks of MEMPORTAL_UPLOAD_CHUNK_BYTES (with S3 each chunk is one multipart part: at least 5 MiB,
# and a 3 GB file must fit in S3's 10,000 parts with room for retries); an unfinished upload's bytes
# are removed MEMPORTAL_UPLOAD_EXPIRE_HOURS after its last chunk (by the clock); one user may have
# MEMPORTAL_UPLOADS_IN_FLIGHT_PER_USER unfinished at once (they count toward the team's storage
# from the start); a chunk's request silent for MEMPORTAL_UPLOAD_STALL_SECONDS (its connection
# died without a word) gives way to the client's next try.
MEMPORTAL_UPLOAD_CHUNK_BYTES = envint("MEMPORTAL_UPLOAD_CHUNK_BYTES", 8 * 1024**2)
MEMPORTAL_UPLOAD_EXPIRE_HOURS = envint("MEMPORTAL_UPLOAD_EXPIRE_HOURS", 24)
MEMPORTAL_UPLOADS_IN_FLIGHT_PER_USER = envint("MEMPORTAL_UPLOADS_IN_FLIGHT_PER_USER", 10)
MEMPORTAL_UPLOAD_STALL_SECONDS = envint("MEMPORTAL_UPLOAD_STALL_SECONDS", 10)
# The upload page's script (static/memportal/upload.js) sends each file on its own: one selection
# (a pick or a drop) may hold this many files; more are refused before a byte is sent. The plain
# form (JavaScript off) sends a selection in one request, refused whole (a 400 page) past this many.
MEMPORTAL_FILES_PER_SELECTION = envint("MEMPORTAL_FILES_PER_SELECTION", 50)
if MEMPORTAL_UPLOAD_CHUNK_BYTES < 64 * 1024 or (
        MEMPORTAL_STORAGE == "s3" and (MEMPORTAL_UPLOAD_CHUNK_BYTES < 5 * 1024**2
                                       or -(-MEMPORTAL_MAX_UPLOAD_BYTES // MEMPORTAL_UPLOAD_CHUNK_BYTES) > 5000)):
    raise ImproperlyConfigured(
        "MEMPORTAL_UPLOAD_CHUNK_BYTES must be at least 64 KiB; with S3 at least 5 MiB (5242880), and large enough "
        "for MEMPORTAL_MAX_UPLOAD_BYTES to fit in 5,000 chunks.")
if MEMPORTAL_MAX_REQUEST_BYTES < min(MEMPORTAL_UPLOAD_CHUNK_BYTES, MEMPORTAL_MAX_UPLOAD_BYTES):
    raise ImproperlyConfigured("MEMPORTAL_MAX_REQUEST_BYTES must hold a whole chunk (MEMPORTAL_UPLOAD_CHUNK_BYTES).")
# Callback records kept per video (the oldest go): the callback URL cannot fill the database.
MEMPORTAL_CALLBACKS_KEPT_PER_VIDEO = envint("MEMPORTAL_CALLBACKS_KEPT_PER_VIDEO", 50)
MEMPORTAL_ANONYMOUS_MAX_REQUEST_BYTES = envint("MEMPORTAL_ANONYMOUS_MAX_REQUEST_BYTES", 64 * 1024)

# memories.ai
MEMORIES_API_BASE_URL = envstr("MEMORIES_API_BASE_URL", "https://api.memories.ai").rstrip("/")
# Which API family new uploads go through: "video" (/serve/api/video/..., the one the project was
# specified from) or "v1" (/serve/api/v1/..., which adds a namespace per team). A video keeps the
# family and namespace it was uploaded under; every path of both families is a setting.
MEMORIES_API_FAMILY = envstr("MEMORIES_API_FAMILY", "video")
MEMORIES_UPLOAD_PATH = envstr("MEMORIES_UPLOAD_PATH", "/serve/api/video/upload")
MEMORIES_LIST_PATH = envstr("MEMORIES_LIST_PATH", "/serve/api/video/list_videos")
# The older family's delete is not confirmed by memories.ai's docs: the v1 call by default.
MEMORIES_DELETE_PATH = envstr("MEMORIES_DELETE_PATH", "/serve/api/v1/delete_videos")
MEMORIES_V1_UPLOAD_PATH = envstr("MEMORIES_V1_UPLOAD_PATH", "/serve/api/v1/upload")
MEMORIES_V1_LIST_PATH = envstr("MEMORIES_V1_LIST_PATH", "/serve/api/v1/list_videos")
MEMORIES_V1_METADATA_PATH = envstr("MEMORIES_V1_METADATA_PATH", "/serve/api/v1/get_metadata")
MEMORIES_V1_DELETE_PATH = envstr("MEMORIES_V1_DELETE_PATH", "/serve/api/v1/delete_videos")
# Beyond upload (uploads/understanding.py; untried live): the older family's search and chat, then v1's calls.
MEMORIES_SEARCH_PATH = envstr("MEMORIES_SEARCH_PATH", "/serve/api/video/search")
MEMORIES_CHAT_STREAM_PATH = envstr("MEMORIES_CHAT_STREAM_PATH", "/serve/api/video/chat")
MEMORIES_V1_SEARCH_PATH = envstr("MEMORIES_V1_SEARCH_PATH", "/serve/api/v1/search")
MEMORIES_V1_CHAT_STREAM_PATH = envstr("MEMORIES_V1_CHAT_STREAM_PATH", "/serve/api/v1/chat_stream")
MEMORIES_V1_SEARCH_AUDIO_TRANSCRIPTS_PATH = envstr("MEMORIES_V1_SEARCH_AUDIO_TRANSCRIPTS_PATH",
                                                   "/serve/api/v1/search_audio_transcripts")
MEMORIES_V1_GET_VIDEO_TRANSCRIPTION_PATH = envstr("MEMORIES_V1_GET_VIDEO_TRANSCRIPTION_PATH",
                                                  "/serve/api/v1/get_video_transcription")
MEMORIES_V1_GET_AUDIO_TRANSCRIPTION_PATH = envstr("MEMORIES_V1_GET_AUDIO_TRANSCRIPTION_PATH",
                                                  "/serve/api/v1/get_audio_transcription")
MEMORIES_V1_GENERATE_SUMMARY_PATH = envstr("MEMORIES_V1_GENERATE_SUMMARY_PATH", "/serve/api/v1/generate_summary")
MEMORIES_V1_LIST_SESSIONS_PATH = envstr("MEMORIES_V1_LIST_SESSIONS_PATH", "/serve/api/v1/list_sessions")
MEMORIES_V1_GET_SESSION_DETAIL_PATH = envstr("MEMORIES_V1_GET_SESSION_DETAIL_PATH", "/serve/api/v1/get_session_detail")
# Issue 14 (docs/understanding.md): transcripts and summaries on the video page. Off by default (the API is
# documented but untried); on in `make demo`.
MEMPORTAL_UNDERSTANDING = envbool("MEMPORTAL_UNDERSTANDING", False)
# Search and ask (docs/understanding.md): memories.ai allows search 1/s and chat 2/min per account.
MEMPORTAL_SEARCH_INTERVAL_SECONDS = envfloat("MEMPORTAL_SEARCH_INTERVAL_SECONDS", 1.0)
MEMPORTAL_CHAT_INTERVAL_SECONDS = envfloat("MEMPORTAL_CHAT_INTERVAL_SECONDS", 30.0)
MEMPORTAL_CHAT_QUESTIONS_PER_DAY = envint("MEMPORTAL_CHAT_QUESTIONS_PER_DAY", 50)  # per team, any 24 hours
MEMPORTAL_ASK_STREAMS_MAX = envint("MEMPORTAL_ASK_STREAMS_MAX", 4)  # answers streaming at once: each holds a web thread
MEMPORTAL_ASK_VIDEOS_MAX = envint("MEMPORTAL_ASK_VIDEOS_MAX", 20)  # videos one question may be about
# The longest an answer may stream (it holds a web thread): past it, it is cut off and says so.
MEMPORTAL_ASK_ANSWER_SECONDS = envint("MEMPORTAL_ASK_ANSWER_SECONDS", 300)
# With the v1 family each team's videos live in the namespace (unique_id) PREFIX + the team's id.
MEMORIES_NAMESPACE_PREFIX = envstr("MEMORIES_NAMESPACE_PREFIX", "memportal-team-")
MEMORIES_CONNECT_TIMEOUT = envint("MEMORIES_CONNECT_TIMEOUT", 10)
MEMORIES_READ_TIMEOUT = envint("MEMORIES_READ_TIMEOUT", 120)

MEMPORTAL_PUBLIC_URL = envstr("MEMPORTAL_PUBLIC_URL").rstrip("/")
# Who may read /healthz's details without signing in (Authorization: Bearer …); empty: nobody.
MEMPORTAL_HEALTH_TOKEN = envstr("MEMPORTAL_HEALTH_TOKEN").strip()
# How long the relay worker may take to read what a stored video holds before it is refused.
MEMPORTAL_PROBE_SECONDS = envint("MEMPORTAL_PROBE_SECONDS", 30)
# Playback (docs/playback.md): the most bytes one answer to a Range request carries, and how long a
# presigned S3 URL of a video or thumbnail lives (longer than anyone watches; S3 allows 7 days).
MEMPORTAL_MEDIA_RANGE_BYTES = envint("MEMPORTAL_MEDIA_RANGE_BYTES", 4 * 1024 * 1024)
MEMPORTAL_MEDIA_URL_SECONDS = envint("MEMPORTAL_MEDIA_URL_SECONDS", 6 * 3600)
if MEMPORTAL_MEDIA_RANGE_BYTES < 65536 or not 60 <= MEMPORTAL_MEDIA_URL_SECONDS <= 604800:
    raise ImproperlyConfigured("MEMPORTAL_MEDIA_RANGE_BYTES must be >= 65536, MEMPORTAL_MEDIA_URL_SECONDS 60-604800")
MEMPORTAL_UPLOAD_INTERVAL_SECONDS = envint("MEMPORTAL_UPLOAD_INTERVAL_SECONDS", 60)
MEMPORTAL_MAX_ATTEMPTS = envint("MEMPORTAL_MAX_ATTEMPTS", 8)
MEMPORTAL_RETRY_BASE_SECONDS = envint("MEMPORTAL_RETRY_BASE_SECONDS", 30)
MEMPORTAL_STATUS_FIRST_CHECK_SECONDS = envint("MEMPORTAL_STATUS_FIRST_CHECK_SECONDS", 15)
MEMPORTAL_STATUS_MAX_INTERVAL_SECONDS = envint("MEMPORTAL_STATUS_MAX_INTERVAL_SECONDS", 900)
MEMPORTAL_STATUS_MAX_AGE = envint("MEMPORTAL_STATUS_MAX_AGE", 48 * 3600)
MEMPORTAL_RETENTION_DAYS = envint("MEMPORTAL_RETENTION_DAYS", 7)
MEMPORTAL_HEARTBEAT_STALE_SECONDS = envint("MEMPORTAL_HEARTBEAT_STALE_SECONDS", 300)
MEMPORTAL_CALLBACK_MAX_BYTES = 64 * 1024
MEMPORTAL_FERNET_KEYS = envlist("MEMPORTAL_FERNET_KEYS")

# Security. Production runs behind a TLS-terminating proxy; these are on unless DEBUG.
SESSION_COOKIE_SECURE = envbool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
# memportal/sessions.py: idle and absolute lifetimes, and how fresh a password must be for the
# steps that ask for it again (adding or changing an API key).
MEMPORTAL_SESSION_IDLE_SECONDS = envint("MEMPORTAL_SESSION_IDLE_SECONDS", 3600)
MEMPORTAL_SESSION_MAX_SECONDS = envint("MEMPORTAL_SESSION_MAX_SECONDS", 12 * 3600)
MEMPORTAL_REAUTH_SECONDS = envint("MEMPORTAL_REAUTH_SECONDS", 300)
SESSION_COOKIE_AGE = MEMPORTAL_SESSION_MAX_SECONDS
SECURE_SSL_REDIRECT = envbool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = envint("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = envbool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Behind a TLS proxy (nginx): trust its X-Forwarded-Proto, and take the client's address from the
# last X-Forwarded-For entry, the one the proxy added (memportal/middleware.py client_ip).
MEMPORTAL_BEHIND_PROXY = envbool("DJANGO_BEHIND_PROXY", False)
if MEMPORTAL_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "uploads.views.csrf_failure"  # the portal's 403 page, in its words
# With S3 the browser fetches videos and thumbnails from the bucket (presigned URLs): its origin, or
# MEMPORTAL_S3_MEDIA_ORIGINS where the endpoint does not tell it (a CDN, a virtual-hosted endpoint).
_s3 = VIDEO_STORAGE["OPTIONS"] if MEMPORTAL_STORAGE == "s3" else {}
MEMPORTAL_MEDIA_ORIGINS = (envlist("MEMPORTAL_S3_MEDIA_ORIGINS") or (
    ["/".join(_s3["endpoint_url"].split("/")[:3])] if _s3["endpoint_url"] else  # scheme://host:port
    [f"https://{_s3['bucket_name']}.s3{region}.amazonaws.com" for region in
     ("", "." + (_s3["region_name"] or envstr("AWS_DEFAULT_REGION", "us-east-1")))]
)) if _s3 else []
SECURE_CSP = {
    "default-src": ["'self'"],
    "img-src": ["'self'", "data:", *MEMPORTAL_MEDIA_ORIGINS],
    "media-src": ["'self'", *MEMPORTAL_MEDIA_ORIGINS],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}

# One event a line (memportal/logs.py): JSON for production's log collector, plain text for a
# person at a terminal (make demo). MEMPORTAL_LOG_FILE also appends every line to a file.
MEMPORTAL_LOG_FORMAT = envstr("MEMPORTAL_LOG_FORMAT").strip().lower() or "json"
if MEMPORTAL_LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"MEMPORTAL_LOG_FORMAT must be json or plain, not {MEMPORTAL_LOG_FORMAT!r}")
MEMPORTAL_LOG_FILE = envstr("MEMPORTAL_LOG_FILE").strip()
LOGGING = logging_config(MEMPORTAL_LOG_FORMAT, MEMPORTAL_LOG_FILE, envstr("MEMPORTAL_LOG_LEVEL", "INFO"))
