"""The uploads app: videos, their relay to memories.ai, and the people and keys behind them."""

from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    verbose_name = "Videos and teams"

    def ready(self):
        from . import checks, signals  # noqa: F401  (registers system checks and signal handlers)
        from .admin import guard_autocomplete, guard_other_apps_admins

        # The admin's autodiscovery ran in its own ready() (django.contrib.admin comes first in
        # INSTALLED_APPS): now no admin of any app filters on a secret or by regex.
        guard_other_apps_admins()
        guard_autocomplete()
