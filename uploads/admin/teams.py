"""Teams and their memberships in the admin."""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model

from ..models import Membership, Team
from ..permissions import privileged_otherwise
from .scoping import TeamListFilter, TeamScopedAdmin


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(TeamScopedAdmin):
    team_path = ""
    list_display = ["name", "slug", "member_count", "key_state", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def get_inlines(self, request, obj):
        return [MembershipInline] if request.user.is_superuser else []

    def get_readonly_fields(self, request, obj=None):
        return [] if request.user.is_superuser else ["slug", "created_at"]

    def get_fields(self, request, obj=None):
        return ["name", "slug", "created_at"]

    def get_prepopulated_fields(self, request, obj=None):
        return self.prepopulated_fields if request.user.is_superuser else {}

    @admin.display(description="members")
    def member_count(self, team):
        return team.memberships.count()

    @admin.display(description="memories.ai key")
    def key_state(self, team):
        key = team.api_keys.filter(is_active=True).first()
        if key is None:
            return "no active key"
        return f"{key.masked} failing" if key.is_failing else f"{key.masked} OK"


class MembershipForm(forms.ModelForm):
    """A team admin names an existing user by username: no list of all users is shown."""

    username = forms.CharField(help_text="The username of an existing user.")

    class Meta:
        model = Membership
        fields = ["team", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["username"].initial = self.instance.user.get_username()
            self.fields["username"].disabled = True

    # The same words whether nobody has that username or the person may not be added by a team
    # admin (a superuser, someone staff for another reason): a team admin learns nothing of them.
    NEUTRAL = "This person cannot be added here. Check the username, or ask a superuser to add them."
    request_user = None  # set by MembershipAdmin.get_form

    def acting_superuser(self):
        return self.request_user is not None and self.request_user.is_superuser

    def clean_username(self):
        if self.instance.pk:
            self.user = self.instance.user
            return self.instance.user.get_username()
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None or (not self.acting_superuser() and privileged_otherwise(user)):
            raise forms.ValidationError(self.NEUTRAL)
        self.user = user
        return username

    def clean(self):
        cleaned = super().clean()
        user = getattr(self, "user", None)
        if (user and cleaned.get("role") == Membership.Role.ADMIN and not self.acting_superuser()
                and privileged_otherwise(user)):
            raise forms.ValidationError(self.NEUTRAL)
        if user and cleaned.get("team") and Membership.objects.filter(user=user, team=cleaned["team"]).exists():
            raise forms.ValidationError("This user is already a member of that team.")
        return cleaned

    def save(self, commit=True):
        if not self.instance.pk:
            self.instance.user = self.user
        return super().save(commit)


@admin.register(Membership)
class MembershipAdmin(TeamScopedAdmin):
    form = MembershipForm
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "user__email"]

    def get_readonly_fields(self, request, obj=None):
        # Moving a membership to another team is a removal plus an addition: do those.
        return ["team"] if obj else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request_user = request.user
        return form

    def get_list_filter(self, request):
        return ["role", TeamListFilter] if request.user.is_superuser else ["role"]
