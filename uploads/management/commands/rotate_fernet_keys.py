"""Re-encrypt every stored API key under the newest key of MEMPORTAL_FERNET_KEYS.

Rotation: put a new Fernet key first in MEMPORTAL_FERNET_KEYS (keep the old ones after it),
restart, run this command, then drop the old keys. Until then the old keys still decrypt.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from uploads import crypto
from uploads.models import ApiKey


class Command(BaseCommand):
    help = "Re-encrypt all stored API keys with the first key of MEMPORTAL_FERNET_KEYS."

    def handle(self, *args, **options):
        rotated = 0
        with transaction.atomic():
            for key in ApiKey.objects.select_for_update().only("pk", "secret_encrypted", "label", "last4"):
                try:
                    key.secret_encrypted = crypto.rotate(key.secret_encrypted)
                except crypto.ApiKeyDecryptionError:
                    raise CommandError(
                        f"API key {key.pk} ({key.label}) cannot be decrypted with any key in "
                        "MEMPORTAL_FERNET_KEYS; nothing was changed.") from None
                key.save(update_fields=["secret_encrypted"])
                rotated += 1
        self.stdout.write(f"rotate_fernet_keys: re-encrypted {rotated} API key(s) under the newest key")
