"""What the workers' queues last said: django-tasks-db keeps no worker heartbeat, so the clock
enqueues a small ping task per queue each round and the worker that runs it writes here
(uploads/health.py). One row per queue, updated in place: it never grows."""

from django.db import models


class WorkerPing(models.Model):
    # Times are the database's (the clock and the workers may run on different machines).
    queue = models.CharField(max_length=32, primary_key=True)
    interval_seconds = models.PositiveIntegerField(default=60)  # the clock's --every when it last ran
    clock_at = models.DateTimeField(null=True, blank=True)  # the clock's last round, ping enqueued or not
    enqueued_at = models.DateTimeField(null=True, blank=True)  # the newest ping enqueued
    ran_at = models.DateTimeField(null=True, blank=True)  # the newest ping a worker ran
    ran_enqueued_at = models.DateTimeField(null=True, blank=True)  # when that one had been enqueued
    storage_ok = models.BooleanField(null=True)  # that ping's write, read and delete of a probe object
    detail = models.CharField(max_length=200, blank=True)  # why the probe failed (an error's class)

    class Meta:
        ordering = ["queue"]

    def __str__(self):
        return f"ping of queue {self.queue}"

    @property
    def waiting(self):
        """A ping was enqueued after the last one ran (or none ran yet)."""
        return self.enqueued_at is not None and (self.ran_at is None or self.ran_at < self.enqueued_at)
