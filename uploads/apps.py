"""The uploads app: videos, their relay to memories.ai, and the people and keys behind them."""

from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    verbose_name = "Videos and teams"

    def ready(self):
        from . import checks, signals  # noqa: F401  (registers system checks and signal handlers)
