"""Password reset that works and tells nothing: the form always answers the same way, whether an
address belongs to anyone or not; the mail goes out from a task (so the response time does not
tell either); and requests are limited per client address and per e-mail address in the database,
which every process shares (MEMPORTAL_RESET_PER_ADDRESS, MEMPORTAL_RESET_PER_EMAIL an hour)."""

import hashlib
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm
from django.utils import timezone

from memportal.middleware import client_ip

from . import tasks
from .followups import SendPasswordReset
from .models import PasswordResetRequest

logger = logging.getLogger(__name__)


def email_digest(email):
    return hashlib.sha256(email.strip().casefold().encode()).hexdigest()


class ThrottledPasswordResetForm(PasswordResetForm):
    def save(self, *args, request=None, **kwargs):
        address, digest = (client_ip(request) if request else None), email_digest(self.cleaned_data["email"])
        recent = PasswordResetRequest.objects.filter(created_at__gte=timezone.now() - timedelta(hours=1))
        spent = (recent.filter(client_address=address).count() >= settings.MEMPORTAL_RESET_PER_ADDRESS
                 or recent.filter(email_digest=digest).count() >= settings.MEMPORTAL_RESET_PER_EMAIL)
        PasswordResetRequest.objects.create(client_address=address, email_digest=digest)
        PasswordResetRequest.objects.filter(created_at__lt=timezone.now() - timedelta(days=1)).delete()
        if spent:
            logger.warning("password reset not sent: too many requests from %s or for one address", address)
            return  # the same answer as ever: nothing tells the client it was throttled
        super().save(*args, request=request, **kwargs)

    def send_mail(self, subject_template_name, email_template_name, context, from_email, to_email,
                  html_email_template_name=None):
        """Leave the mail to the worker, which makes the link itself (no task row holds it)."""
        tasks.enqueue([SendPasswordReset(context["user"].pk, context["domain"], context["protocol"])])
