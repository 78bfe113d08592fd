"""The database's clock.

Times that processes on different machines compare (the team's upload slot, a relay's heartbeat,
how long a task row has been running) are written and compared with the database's clock, so a
worker whose own clock drifts neither steals a slot nor makes a live relay look dead.
"""

from datetime import timedelta

from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now


def database_time(seconds=0):
    """An expression for the database's now, moved by `seconds` (negative: in the past)."""
    if not seconds:
        return Now()
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())
