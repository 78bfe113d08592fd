"""Give a thumbnail to each stored video that has none: those probed before thumbnails existed.

The relay worker makes every new video's thumbnail as it probes the file (uploads/probe.py); this
runs the same time-limited probe, one video at a time, for the rest. Run it once after upgrading
(it can run again: a video that has its thumbnail is skipped), beside the running portal.
"""

from django.conf import settings
from django.core.management.base import BaseCommand

from uploads import probe, tasks, thumbnails
from uploads.models import Video


class Command(BaseCommand):
    help = "Make the thumbnails of stored videos that have none (probed before thumbnails existed)."

    def handle(self, *args, **options):
        made = failed = 0
        for video in Video.objects.alive().exclude(file="").filter(thumbnail="").iterator():
            try:
                try:
                    info = probe.probe(video.file.path, settings.MEMPORTAL_PROBE_SECONDS)
                except NotImplementedError:  # S3: ranges, as the relay reads it
                    info = probe.probe(tasks.s3_range_reader(video), settings.MEMPORTAL_PROBE_SECONDS)
            except (probe.ProbeError, *tasks.STORAGE_ERRORS) as error:
                failed += 1
                self.stderr.write(f"video {video.pk}: no thumbnail ({type(error).__name__}: {error})")
                continue
            if thumbnails.keep(video.pk, info.thumbnail):
                made += 1
            else:
                failed += 1
        self.stdout.write(f"make_thumbnails: made {made}, none possible for {failed}")
