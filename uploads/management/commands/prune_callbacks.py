"""Remove old callback records (the audit of what memories.ai sent)."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from uploads.models import CallbackRecord


class Command(BaseCommand):
    help = "Delete callback records received more than --days days ago."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, required=True, help="Keep this many days of records.")

    def handle(self, *args, days, **options):
        if days < 0:
            raise CommandError("--days must be 0 or more")
        cutoff = timezone.now() - timedelta(days=days)
        # Pending records are waiting for a relay's answer: never pruned.
        old = CallbackRecord.objects.filter(received_at__lt=cutoff).exclude(outcome=CallbackRecord.Outcome.PENDING)
        count, _ = old.delete()
        self.stdout.write(f"prune_callbacks: deleted {count} record(s) older than {days} days")
