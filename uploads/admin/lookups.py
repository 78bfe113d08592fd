"""What the admin's query string may filter on, for every ModelAdmin of the site.

Django's admin accepts a lookup on any of a model's own fields from the query string
(`?field__lookup=value`); a lookup it refuses answers 400. Refused here: any lookup that walks
through a secret (a stored digest or ciphertext, a work token, a password: `?callback_digest__startswith=`
would recover it a character at a time), any regex lookup (a crafted one pins a database worker),
and date parts that are not plain numbers in range (they end in a 500 otherwise). The autocomplete
endpoint answers 403 for a field that is not a concrete one of its model (Django's own view
answers a reverse relation such as `field_name=api_keys` with a 500).
"""

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models.constants import LOOKUP_SEP

SECRET_FIELDS = frozenset({
    "password", "secret_encrypted", "fingerprint", "callback_digest", "relay_token", "check_token",
    "session_key", "session_data",
})
REGEX_LOOKUPS = frozenset({"regex", "iregex"})
DATE_PARTS = {"year": (1, 9999), "iso_year": (1, 9999), "month": (1, 12), "day": (1, 31), "week": (1, 53),
              "week_day": (1, 7), "iso_week_day": (1, 7), "quarter": (1, 4), "hour": (0, 23),
              "minute": (0, 59), "second": (0, 59)}


def lookup_is_safe(lookup, value):
    parts = lookup.split(LOOKUP_SEP)
    if SECRET_FIELDS.intersection(parts) or REGEX_LOOKUPS.intersection(parts):
        return False
    bounds = next((DATE_PARTS[part] for part in parts if part in DATE_PARTS), None)
    if bounds is not None:  # __year, and __year__gt etc.: a plain number in range
        values = value if isinstance(value, list) else [value]
        return all(str(v).isdigit() and bounds[0] <= int(v) <= bounds[1] for v in values)
    return True


class SafeLookupsAdmin(admin.ModelAdmin):
    """Every ModelAdmin of the site derives from this (tests/test_admin_scoping.py fails for one
    that does not)."""

    def lookup_allowed(self, lookup, value, request=None):
        return lookup_is_safe(lookup, value) and super().lookup_allowed(lookup, value, request)


def guard_other_apps_admins(site=admin.site):
    """Every other app's ModelAdmin (Django's users and groups, the task queue's results) gets
    the same guard: it is registered again as a subclass with SafeLookupsAdmin first. Run once
    every admin module is imported (uploads/apps.py, after the admin's autodiscovery)."""
    for model, model_admin in list(site._registry.items()):
        if not isinstance(model_admin, SafeLookupsAdmin):
            cls = type(model_admin)
            site.unregister(model)
            site.register(model, type(f"Safe{cls.__name__}", (SafeLookupsAdmin, cls), {}))


class SafeAutocompleteJsonView(AutocompleteJsonView):
    def process_request(self, request):
        try:
            model = apps.get_model(request.GET["app_label"], request.GET["model_name"])
            field = model._meta.get_field(request.GET["field_name"])
        except (KeyError, LookupError, FieldDoesNotExist, ValueError):
            raise PermissionDenied from None
        if not getattr(field, "concrete", False):
            raise PermissionDenied
        return super().process_request(request)


def guard_autocomplete(site=admin.site):
    """The site's autocomplete endpoint is SafeAutocompleteJsonView (set before its URLs are built)."""
    site.autocomplete_view = lambda request: SafeAutocompleteJsonView.as_view(admin_site=site)(request)
