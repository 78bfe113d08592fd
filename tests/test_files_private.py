"""What the portal writes is not world-readable (issue 10, finding 6): stored videos and their
folders, and the SQLite database, are closed to other users of the machine."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from .conftest import make_video

pytestmark = pytest.mark.django_db(transaction=True)


def others_may(path):
    return os.stat(path).st_mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IXOTH)


def test_a_stored_video_and_its_folders_are_closed_to_others(member, team):
    video = make_video(member, team)
    path = Path(video.file.path)
    assert not others_may(path)
    for folder in path.relative_to(settings.MEDIA_ROOT).parents:
        if str(folder) != ".":
            assert not others_may(Path(settings.MEDIA_ROOT) / folder), folder


def test_a_new_sqlite_database_is_closed_to_others(tmp_path):
    env = {**os.environ, "MEMPORTAL_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.sqlite3"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=settings.BASE_DIR, env=env, check=True)
    assert not others_may(tmp_path / "fresh.sqlite3")
