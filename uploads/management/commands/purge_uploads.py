"""Remove the stored files of videos that finished more than MEMPORTAL_RETENTION_DAYS ago."""

from django.conf import settings
from django.core.management.base import BaseCommand

from uploads.removal import purge_uploads


class Command(BaseCommand):
    help = ("Remove stored files of videos ready, failed or cancelled for more than "
            "MEMPORTAL_RETENTION_DAYS; queued and rejected videos keep theirs.")

    def handle(self, *args, **options):
        removed = purge_uploads()
        self.stdout.write(f"purge_uploads: removed {removed} stored file(s) older than "
                          f"{settings.MEMPORTAL_RETENTION_DAYS} days")
