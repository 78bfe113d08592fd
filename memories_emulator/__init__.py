"""A fake memories.ai API: a development and test tool, never imported by production code.

It checks the Authorization header against the keys it was given, answers with memories.ai's
envelopes and codes, paces uploads per key, keeps the received files' sizes and hashes (never
the files), later POSTs status callbacks, and plays the faults a test injects. Tests run it
in-process (``MemoriesEmulator(keys).start()``); ``python -m memories_emulator`` runs it
standalone (``make demo``, out-of-process tests and benchmarks). It needs no Django.

It serves both of memories.ai's API families on one port: the older "v1.1" one
(``/serve/api/video/...``) and the newer "v1" one (``/serve/api/v1/...``, with ``unique_id``
namespaces and get_metadata); ``remote`` lists the paths and their constructor keywords.

Beyond upload it serves search, transcripts, summaries, chat (streamed as server-sent events)
and sessions, from deterministic content: a transcript per sample video in ``data/transcripts/``,
content made from the name of any other file (docs/understanding.md).

Modules: ``core`` (state and API), ``remote`` (paths, remote video, answer shapes),
``store`` (the remote videos; list, get_metadata and delete),
``understanding`` (the calls beyond upload, their rate limits), ``content`` (what each video
says), ``conversations`` (chat answers, sessions), ``sse`` (streamed answers),
``server`` (HTTP handler, and ``Backend``, the interface it uses), ``bodies`` (JSON and
multipart readers, upload records), ``timeline`` (planned steps, callbacks), ``faults``
(fault catalogue), ``__main__`` (command line).
"""

from memories_emulator.bodies import ReceivedUpload, key_tail
from memories_emulator.core import MemoriesEmulator
from memories_emulator.remote import RemoteVideo

__all__ = ["MemoriesEmulator", "ReceivedUpload", "RemoteVideo", "key_tail"]
