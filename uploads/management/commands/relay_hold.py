"""`manage.py relay_hold [--clear]`: show, or clear, the hold on every team's relays.

memories.ai answering HTTP 404/405/413 or a redirect means a setting (MEMORIES_API_BASE_URL, a
MEMORIES_*_PATH) or a proxy in between is wrong: the portal holds every relay instead of
spending each file's attempts. Fix the setting, restart the workers, then clear the hold: the
waiting videos are queued again.
"""

from django.core.management.base import BaseCommand

from uploads import actions
from uploads.models import RelayHold
from uploads.tasks import perform


class Command(BaseCommand):
    help = "Show the hold on relays (memories.ai settings look wrong), or clear it and resume the queues."

    def add_arguments(self, parser):
        parser.add_argument("--clear", action="store_true", help="clear the hold and resume every queue")

    def handle(self, *args, clear, **options):
        hold = RelayHold.in_force()
        if hold is None:
            self.stdout.write("No hold: relays run.")
            return
        if not clear:
            self.stdout.write(str(hold))
            self.stdout.write("Fix the setting, restart the workers, then run: manage.py relay_hold --clear")
            return
        resumed = perform(actions.clear_relay_hold)
        self.stdout.write(f"Hold cleared; {resumed} waiting video(s) queued again.")
