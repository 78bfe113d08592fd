"""The memories.ai emulator's remote videos, and the API calls that read or delete them.

Owns the store of every account's videos by number, and the answers to list_videos,
get_metadata and delete_videos in either API family (paths and shapes in ``remote``): a call
sees only the videos of its own key (account) and of the namespace it names (``unique_id`` in
the v1 family; always "default" in the older one), never deleted ones. Numbers are unique
across accounts and namespaces, so the test-facing lookups (``get``) take a number alone.
Not locked itself, and it plans nothing: ``core`` holds the emulator's lock around every call,
brings the timeline up to date before a read, and drops a deleted video's planned steps.

get_metadata of a video the call cannot see (an unknown number, another namespace's or
account's, or a deleted one) answers code "0001" with msg "video not found" and ``data: null``.
memories.ai's docs do not say what it answers; "0001" is their code for a wrong parameter,
which a number naming no video is, and an error code keeps a client from mistaking "no such
video" for a success without data (the docs' "0000 with null data" means "not ready yet" for
transcripts). Another account's video is "not found" too, so an answer never tells whether a
number exists elsewhere. Without ``video_no`` it answers "0003" (parameter missing).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from memories_emulator.bodies import envelope
from memories_emulator.remote import MAX_DELETE, RemoteVideo, described, listed, namespace, shown_status

NOT_FOUND = "video not found"


class VideoStore:
    """Every account's remote videos. Not locked itself: the caller holds the emulator's lock."""

    def __init__(self) -> None:
        self._videos: dict[str, RemoteVideo] = {}

    def __contains__(self, video_no: str) -> bool:
        return video_no in self._videos

    def add(self, video: RemoteVideo) -> None:
        self._videos[video.video_no] = video

    def get(self, video_no: str) -> RemoteVideo | None:
        """Any video by number, deleted or not, whoever holds it (for tests and the timeline)."""
        return self._videos.get(video_no)

    def copies(self) -> dict[str, RemoteVideo]:
        return {no: dataclasses.replace(v) for no, v in self._videos.items()}

    def visible(self, key: str, unique_id: str) -> Iterator[RemoteVideo]:
        """The videos a call with this key, naming this namespace, can see."""
        return (v for v in self._videos.values()
                if v.key == key and v.unique_id == unique_id and not v.deleted)

    # -- the API ---------------------------------------------------------------

    def list_videos(self, key: str, family: str, payload: Any, unit: str) -> dict[str, Any]:
        payload = {} if payload is None else payload
        if not isinstance(payload, dict):
            return envelope("0001", msg="body must be a JSON object")
        try:
            page, size = int(payload.get("page") or 1), int(payload.get("size") or 20)
        except (TypeError, ValueError):
            return envelope("0001", msg="page and size must be numbers")
        try:
            unique_id = namespace(family, payload.get("unique_id"))
        except ValueError as exc:
            return envelope("0001", msg=str(exc))
        if page < 1 or size < 1:
            return envelope("0001", msg="page and size start at 1")
        video_no, status, name = payload.get("video_no"), payload.get("status"), payload.get("video_name")
        # A status filter is read in the family's own spelling (v1: FAILED).
        found = [v for v in self.visible(key, unique_id)
                 if (not video_no or v.video_no == video_no)
                 and (not status or shown_status(v.status, family) == status)
                 and (not name or str(name) in v.video_name)]
        found.sort(key=lambda v: (v.create_time, v.video_no), reverse=True)
        shown = [listed(v, unit, family) for v in found[(page - 1) * size:page * size]]
        return envelope("0000", {"videos": shown, "current_page": page, "page_size": size,
                                 "total_count": len(found)})

    def get_metadata(self, key: str, family: str, query: dict[str, str], unit: str) -> dict[str, Any]:
        """One video's metadata (v1 family); see the module docstring for the not-found answer."""
        video_no = query.get("video_no")
        if not video_no:
            return envelope("0003", msg="video_no is required")
        unique_id = namespace(family, query.get("unique_id"))
        video = next((v for v in self.visible(key, unique_id) if v.video_no == video_no), None)
        if video is None:
            return envelope("0001", msg=NOT_FOUND)
        return envelope("0000", described(video, unit))

    def delete_videos(self, key: str, family: str, payload: Any,
                      query: dict[str, str]) -> tuple[dict[str, Any], set[str]]:
        """The answer, and the numbers deleted (the caller drops their planned steps)."""
        if not isinstance(payload, list) or not all(isinstance(no, str) for no in payload):
            return envelope("0001", msg="body must be a JSON array of video numbers"), set()
        if len(payload) > MAX_DELETE:
            return envelope("0001", msg=f"at most {MAX_DELETE} videos per call"), set()
        unique_id = namespace(family, query.get("unique_id"))
        # Unknown numbers, and other accounts' or namespaces' videos, are skipped yet still "success".
        wanted = set(payload)
        done = {v.video_no for v in self.visible(key, unique_id) if v.video_no in wanted}
        for no in done:
            self._videos[no].deleted = True
        return envelope("0000"), done
