"""Create the demo team, its API key and its people; safe to run again (it changes nothing twice)."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from uploads.models import ApiKey, Membership, Team

DEMO_PASSWORD = "memportal-demo"
PEOPLE = [
    # username, role in the demo team (None: superuser, in no team)
    ("demo-member", Membership.Role.MEMBER),
    ("demo-admin", Membership.Role.ADMIN),
    ("demo-super", None),
]


class Command(BaseCommand):
    help = "Seed a demo team with an active API key (MEMPORTAL_DEMO_API_KEY), a team admin and a member."

    def handle(self, *args, **options):
        raw_key = os.environ.get("MEMPORTAL_DEMO_API_KEY", "")
        if not raw_key:
            raise CommandError("Set MEMPORTAL_DEMO_API_KEY (make demo generates one into var/secrets.env).")
        team, _ = Team.objects.get_or_create(slug="demo", defaults={"name": "Demo team"})
        User = get_user_model()
        created_any = False
        for username, role in PEOPLE:
            user, created = User.objects.get_or_create(username=username, defaults={
                "email": f"{username}@example.com", "is_superuser": role is None, "is_staff": role is None,
            })
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
                created_any = True
            if role is not None:
                Membership.objects.get_or_create(user=user, team=team, defaults={"role": role})
        if not team.api_keys.exists():
            key = ApiKey(team=team, label="Demo key (emulator)", is_active=True)
            key.set_secret(raw_key)
            key.save()
        self.stdout.write(("Seeded" if created_any else "Demo data already there:") +
                          f" team “{team}” with key {team.api_keys.filter(is_active=True).first()}")
        self.stdout.write("Sign in with (password for each: %s):" % DEMO_PASSWORD)
        self.stdout.write("  demo-member  a member of the demo team: uploads and sees their videos")
        self.stdout.write("  demo-admin   the demo team's admin: also /admin/ for members and keys")
        self.stdout.write("  demo-super   superuser: everything")
