"""Encryption of memories.ai API keys at rest.

Keys come from MEMPORTAL_FERNET_KEYS (comma-separated, newest first). MultiFernet encrypts with
the first and decrypts with any, so an operator rotates by prepending a new key and running
`manage.py rotate_fernet_keys`. A ciphertext is never returned as if it were the key: any
failure raises ApiKeyDecryptionError, whose message never contains key material.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class ApiKeyDecryptionError(Exception):
    """The stored key cannot be decrypted with MEMPORTAL_FERNET_KEYS."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            "MEMPORTAL_FERNET_KEYS is empty: set it to one or more Fernet keys "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
        )
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            "MEMPORTAL_FERNET_KEYS holds a value that is not a Fernet key "
            "(32 url-safe base64-encoded bytes)."
        ) from None


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.MEMPORTAL_FERNET_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ApiKeyDecryptionError(
            "A stored API key cannot be decrypted with MEMPORTAL_FERNET_KEYS: "
            "was an encryption key removed before `manage.py rotate_fernet_keys` ran?"
        ) from None


def rotate(ciphertext: str) -> str:
    try:
        return fernet().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise ApiKeyDecryptionError("A stored API key cannot be decrypted for rotation.") from None
