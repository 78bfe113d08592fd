"""The SHA-256 of a stored file, read as a stream (never whole in memory), and keeping it.

A resumable upload (uploads/resumable.py) arrives in chunks that no hash state survives, so its
Video is made with sha256 "". The relay worker hashes the stored file (uploads/tasks.py
hash_stored) before it claims the account's upload slot, in its own process: outside the probe's
time-limited child (uploads/probe.py), so hashing 3 GB (10-20 s) never counts against
MEMPORTAL_PROBE_SECONDS.
"""

import hashlib

from .models import Video

BLOCK_BYTES = 1024 * 1024


def sha256_of(stream, block_bytes=BLOCK_BYTES):
    """The hex SHA-256 of what `stream` yields, read block by block until it ends, and how many
    bytes that was."""
    hasher, size = hashlib.sha256(), 0
    while block := stream.read(block_bytes):
        hasher.update(block)
        size += len(block)
    return hasher.hexdigest(), size


def keep(video_id, digest):
    """Store a video's SHA-256 unless one is stored already (the form's, or another run's)."""
    return Video.objects.filter(pk=video_id, sha256="").update(sha256=digest)
