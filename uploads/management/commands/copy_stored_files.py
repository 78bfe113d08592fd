"""Copy every stored video from a local folder into the configured storage: moving to S3.

Run with the new storage configured (MEMPORTAL_STORAGE=s3, MEMPORTAL_S3_*) and the old folder
named; docs/deploy.md, "Moving up", gives the order of the steps. Each file keeps its name, so no
row changes; a file already there with its full size is left alone, so the command can run
again (after an interruption, or once more with the portal stopped to take the last uploads).
"""

from django.core.files.storage import FileSystemStorage
from django.core.management.base import BaseCommand, CommandError

from uploads.models import Video


class Command(BaseCommand):
    help = "Copy stored videos from a local folder (the old MEDIA_ROOT) into the configured storage."

    def add_arguments(self, parser):
        parser.add_argument("--from-folder", required=True, help="the folder the files are in now (var/media)")
        parser.add_argument("--dry-run", action="store_true", help="say what would be copied, copy nothing")
        parser.add_argument("--prune", action="store_true",
                            help="also remove files under videos/ in the new storage that no video holds any more "
                                 "(deleted or purged since an earlier run): run it with the portal stopped")

    def handle(self, *args, from_folder, dry_run, prune, **options):
        source = FileSystemStorage(location=from_folder)
        target = Video._meta.get_field("file").storage
        if isinstance(target, FileSystemStorage) and target.path("") == source.path(""):
            raise CommandError("the configured storage is that folder: configure the new storage first "
                               "(MEMPORTAL_STORAGE=s3 and MEMPORTAL_S3_*)")
        copied = present = missing = 0
        for pk, name, size in held_files():
            if not source.exists(name):
                missing += 1
                self.stderr.write(f"video {pk}: {name} is not in {from_folder}")
                continue
            size = source.size(name) if size is None else size  # a thumbnail: its size is the local file's
            if target.exists(name):
                if target.size(name) == size:
                    present += 1
                    continue
                if not dry_run:
                    target.delete(name)  # an earlier copy that did not finish
            if not dry_run:
                try:
                    fileobj = source.open(name, "rb")
                except FileNotFoundError:  # deleted or purged meanwhile: nothing to keep
                    continue
                with fileobj:
                    saved = target.save(name, fileobj)
                if saved != name or target.size(name) != size:
                    raise CommandError(f"video {pk}: {name} was not copied whole (stored as {saved})")
            copied += 1
        pruned = self.prune(target, dry_run) if prune else 0
        verb = "would copy" if dry_run else "copied"
        self.stdout.write(f"copy_stored_files: {verb} {copied}, already there {present}, missing {missing}"
                          + (f", {'would remove' if dry_run else 'removed'} {pruned} no video holds" if prune else ""))
        if missing:
            raise CommandError(f"{missing} stored file(s) missing from {from_folder}: nothing was changed for them")

    def prune(self, target, dry_run, folder="videos"):
        """Remove what an earlier run copied of videos deleted or purged since (their local file
        went, their copy would stay in the bucket for ever); returns how many."""
        held = {name for _, name, _ in held_files()}
        removed = 0
        folders, files = target.listdir(folder)
        for name in (f"{folder}/{file}" for file in files):
            if name not in held:
                removed += 1
                if not dry_run:
                    target.delete(name)
        for sub in folders:
            removed += self.prune(target, dry_run, f"{folder}/{sub}")
        return removed


def held_files():
    """(video id, storage name, size or None) of every stored file a video holds: its copy, and its
    thumbnail beside it (uploads/thumbnails.py; its size is not recorded)."""
    for pk, name, size, thumbnail in Video.objects.exclude(file="").values_list("pk", "file", "size", "thumbnail"):
        yield pk, name, size
        if thumbnail:
            yield pk, thumbnail, None
