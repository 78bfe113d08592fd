"""The Django admin, scoped: superusers see everything, team admins only their own teams.

Every ModelAdmin a team admin can open derives from TeamScopedAdmin (the relay hold, in
operations.py, is for superusers only), which filters rows by the teams the user
administers (Team.objects.administered_by), checks each object's team before showing, changing
or deleting it, and limits foreign-key choices the same way. A ModelAdmin added later inherits
this, and tests/test_admin_scoping.py walks every registered ModelAdmin to prove it.
"""

from . import keys, operations, partial, teams, videos  # noqa: F401  (each registers its ModelAdmins)
from .lookups import SafeLookupsAdmin, guard_autocomplete, guard_other_apps_admins
from .scoping import TeamScopedAdmin

__all__ = ["SafeLookupsAdmin", "TeamScopedAdmin", "guard_autocomplete", "guard_other_apps_admins"]
