"""Encryption-key rotation, and what happens when the encryption key is wrong."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError

from uploads import crypto
from uploads.models import ApiKey

from .conftest import TEST_KEY

pytestmark = pytest.mark.django_db


def test_rotation_re_encrypts_under_the_newest_key(api_key, settings, capsys):
    old = settings.MEMPORTAL_FERNET_KEYS[0]
    new = Fernet.generate_key().decode()
    settings.MEMPORTAL_FERNET_KEYS = [new, old]
    assert ApiKey.objects.get().reveal() == TEST_KEY  # the old key still decrypts until rotation
    call_command("rotate_fernet_keys")
    assert "re-encrypted 1 API key(s)" in capsys.readouterr().out
    settings.MEMPORTAL_FERNET_KEYS = [new]  # the old key can now go
    assert ApiKey.objects.get().reveal() == TEST_KEY


def test_a_wrong_encryption_key_fails_loudly_and_never_returns_ciphertext(api_key, settings):
    settings.MEMPORTAL_FERNET_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.ApiKeyDecryptionError) as error:
        ApiKey.objects.get().reveal()
    assert api_key.secret_encrypted not in str(error.value)
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("rotate_fernet_keys")


def test_a_key_that_cannot_be_decrypted_holds_the_relay(member, team, api_key, emulator, settings):
    from uploads.tasks import relay_video

    from .conftest import make_video

    video = make_video(member, team)
    settings.MEMPORTAL_FERNET_KEYS = [Fernet.generate_key().decode()]
    relay_video.call(str(video.pk), 0)
    video.refresh_from_db()
    api_key.refresh_from_db()
    assert video.status == "queued" and api_key.is_failing
    assert "cannot be decrypted" in api_key.last_error
    assert emulator.uploads == []
