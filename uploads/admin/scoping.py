"""The scoping every ModelAdmin here inherits: superusers see everything, team admins only their
own teams' rows (Team.objects.administered_by), checked for each object too."""

from django.contrib import admin
from django.contrib.auth import get_user_model

from ..models import Team
from .lookups import SafeLookupsAdmin


class TeamScopedAdmin(SafeLookupsAdmin):
    # The lookup from this model to its Team ("" for Team itself).
    team_path = "team"

    def administered_teams(self, request):
        return Team.objects.administered_by(request.user)

    def scope(self, request, queryset):
        if request.user.is_superuser:
            return queryset
        teams = self.administered_teams(request)
        if self.team_path:
            return queryset.filter(**{f"{self.team_path}__in": teams})
        return queryset.filter(pk__in=teams)

    def get_queryset(self, request):
        return self.scope(request, super().get_queryset(request))

    def in_scope(self, request, obj):
        return obj is None or self.scope(request, type(obj)._default_manager.filter(pk=obj.pk)).exists()

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self.in_scope(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.in_scope(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.in_scope(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Team and not request.user.is_superuser:
            kwargs["queryset"] = teams = self.administered_teams(request)
            if len(teams) == 1:
                kwargs["empty_label"] = None  # one team: it is the choice
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ScopedOwnerFilter(admin.SimpleListFilter):
    """Filter by member, offering only the owners of videos the user may see."""

    title = "member"
    parameter_name = "owner"

    def lookups(self, request, model_admin):
        owners = get_user_model().objects.filter(
            videos__in=model_admin.get_queryset(request)).distinct().order_by("username")
        return [(str(user.pk), user.get_username()) for user in owners]

    def queryset(self, request, queryset):
        return queryset.filter(owner_id=self.value()) if self.value() else queryset


class TeamListFilter(admin.SimpleListFilter):
    """Filter by team, along the ModelAdmin's own team_path (superusers only)."""

    title = "team"
    parameter_name = "team"

    def __init__(self, request, params, model, model_admin):
        self.team_path = model_admin.team_path
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return [(str(t.pk), t.name) for t in Team.objects.administered_by(request.user)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{f"{self.team_path}_id": self.value()})
        return queryset


class ReadOnlyAdmin(TeamScopedAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)


class ManageVideosMixin:
    """Actions a team admin runs on many of the team's videos at once (scoped like every row)."""

    def has_manage_permission(self, request):
        return request.user.is_superuser or Team.objects.administered_by(request.user).exists()
