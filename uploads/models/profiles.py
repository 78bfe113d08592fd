"""What each person sets for themselves: the time zone times are shown in, and which outcomes of
their videos they are emailed about."""

from django.conf import settings
from django.db import models


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portal_profile")
    # An IANA zone name (zoneinfo); "" means the portal's (MEMPORTAL_TIME_ZONE).
    time_zone = models.CharField(max_length=64, blank=True)
    email_when_ready = models.BooleanField(default=False)
    email_when_failed = models.BooleanField(default=False)

    def __str__(self):
        return f"profile of {self.user}"

    @classmethod
    def of(cls, user):
        """The user's profile as saved, or an unsaved one with the defaults."""
        try:
            return user.portal_profile
        except cls.DoesNotExist:
            return cls(user=user)
