"""Services for users, roles, teams and API tokens; every change is audited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils.text import slugify

from governance.audit import audit_record
from governance.exceptions import Conflict, ValidationFailed
from governance.models import Team, UserProfile
from governance.policy import Capability, admin_permissions_of, require
from governance.roles import Role, user_roles

User = get_user_model()


def _user_snapshot(user: Any) -> dict[str, Any]:
    return {
        "username": user.username,
        "email": user.email,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "roles": sorted(r.value for r in _fresh_roles(user)),
        "teams": sorted(user.teams.values_list("slug", flat=True)) if user.pk else [],
        "sees_all_teams": _sees_all_teams(user),
    }


def _sees_all_teams(user: Any) -> bool:
    if not user.pk:
        return False
    return UserProfile.objects.filter(user=user, sees_all_teams=True).exists()


def _forget_team_cache(user: Any) -> None:
    # governance.policy caches a user's visible teams on the user object.
    for attribute in ("_governance_team_ids", "_governance_roles"):
        if hasattr(user, attribute):
            delattr(user, attribute)
    if hasattr(user, "_state") and "governance_profile" in user._state.fields_cache:
        del user._state.fields_cache["governance_profile"]


def _fresh_roles(user: Any) -> frozenset[Role]:
    if hasattr(user, "_governance_roles"):
        del user._governance_roles
    return user_roles(user) if user.pk else frozenset()


def role_groups_sync() -> dict[Role, Group]:
    """Create the role groups if missing and give each exactly the admin permissions its capabilities need."""
    groups: dict[Role, Group] = {}
    for role in Role:
        group, _ = Group.objects.get_or_create(name=role.value)
        wanted = []
        for dotted in admin_permissions_of(role):
            app_label, codename = dotted.split(".")
            wanted.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)
        groups[role] = group
    return groups


def user_upsert(
    *,
    username: str,
    role: Role | str,
    actor: Any | None = None,
    email: str = "",
    password: str | None = None,
    teams: Sequence[str] | None = None,
    sees_all_teams: bool | None = None,
) -> tuple[Any, bool]:
    """Create a user with ``role``, or give an existing user that single role; audit it.

    Users get staff status so they can sign in to the admin, where group permissions
    limit what they see. ``teams`` (slugs of existing teams) replaces the user's teams and
    ``sees_all_teams`` sets their oversight flag; None leaves either unchanged. Returns
    ``(user, created)``.
    """
    try:
        role = Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise ValidationFailed(f"unknown role {role!r}; use one of: {allowed}", code="unknown_role") from None
    if not username or len(username) > 150:
        raise ValidationFailed("username must be 1 to 150 characters", code="invalid_username")

    with transaction.atomic():
        wanted_teams = _teams_named(teams) if teams is not None else None
        groups = role_groups_sync()
        user = User.objects.select_for_update().filter(username=username).first()
        created = user is None
        before = None if created else _user_snapshot(user)
        if created:
            user = User(username=username, email=email)
        elif email:
            user.email = email
        user.is_staff = True
        user.is_active = True
        if password is not None:
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        user.save()
        user.groups.remove(*[g for r, g in groups.items() if r != role])
        user.groups.add(groups[role])
        if wanted_teams is not None:
            user.teams.set(wanted_teams)
        if sees_all_teams is not None:
            UserProfile.objects.update_or_create(user=user, defaults={"sees_all_teams": sees_all_teams})
        _forget_team_cache(user)
        after = _user_snapshot(user)
        if created or before != after or password is not None:
            audit_record(
                actor=actor,
                actor_label="system:cli",
                action="user.created" if created else "user.updated",
                target=user,
                target_repr=user.username,
                before=before,
                after={**after, "password_changed": password is not None},
            )
    return user, created


def _teams_named(slugs: Sequence[str]) -> list[Team]:
    found = {team.slug: team for team in Team.objects.filter(slug__in=list(slugs))}
    missing = sorted(set(slugs) - set(found))
    if missing:
        raise ValidationFailed(f"unknown team(s): {', '.join(missing)}; create a team first (admin, or "
                               "create_api_user --create-team)", code="unknown_team", details={"teams": missing})
    return [found[slug] for slug in slugs]


def team_create(*, name: str, slug: str = "", actor: Any | None = None) -> Team:
    """Create a team (its slug from the name unless given); audit it. 409 when the name or slug is taken.

    ``actor`` None is the command line (system); a person needs ``team.manage``.
    """
    if actor is not None:
        require(actor, Capability.TEAM_MANAGE)
    name = (name or "").strip()
    slug = slug or slugify(name)
    if not name or len(name) > 100 or not slug:
        raise ValidationFailed("a team needs a name of 1 to 100 characters with at least one letter or digit",
                               code="invalid_team")
    if Team.objects.filter(name=name).exists() or Team.objects.filter(slug=slug).exists():
        raise Conflict(f"a team named {name!r} or with slug {slug!r} exists already", code="duplicate_team")
    with transaction.atomic():
        team = Team.objects.create(name=name, slug=slug)
        audit_record(actor=actor, actor_label="system:cli", action="team.created", target=team, target_repr=team.slug,
                     after=_team_snapshot(team))
    return team


def team_get_or_create(*, name: str, actor: Any | None = None) -> Team:
    """Return the team with this name (or slug), creating it if missing (for the demo and the command line)."""
    existing = Team.objects.filter(name=name).first() or Team.objects.filter(slug=slugify(name)).first()
    return existing or team_create(name=name, actor=actor)


def _team_snapshot(team: Any) -> dict[str, Any]:
    return {"name": team.name, "slug": team.slug,
            "members": sorted(team.members.values_list("username", flat=True)) if team.pk else []}


def team_snapshot(team: Any) -> dict[str, Any] | None:
    """Return the audited view of a team (None for an unsaved one)."""
    return _team_snapshot(team) if team.pk else None


def team_record_admin_change(*, actor: Any, team: Any, before: dict[str, Any] | None) -> None:
    """Audit a team created or changed (name, members) through the admin (called inside its transaction)."""
    after = _team_snapshot(team)
    if before == after:
        return
    audit_record(actor=actor, action="team.created" if before is None else "team.updated", target=team,
                 target_repr=team.slug, before=before, after=after)


def api_token_issue(*, user: Any, actor: Any | None = None) -> tuple[str, Any]:
    """Issue a new expiring API token for ``user``; return its secret (shown once) and expiry."""
    from knox.models import get_token_model

    with transaction.atomic():
        instance, token = get_token_model().objects.create(user=user)
        audit_record(
            actor=actor,
            actor_label="system:cli",
            action="api_token.issued",
            target=user,
            target_repr=user.username,
            # Never the secret: only what identifies the token and when it expires.
            after={"token_key": instance.token_key, "expiry": instance.expiry},
        )
    return token, instance.expiry


def api_token_revoke(*, user: Any, token: Any) -> None:
    """Revoke one API token (the knox token instance) and audit it."""
    with transaction.atomic():
        key = token.token_key
        token.delete()
        audit_record(actor=user, action="api_token.revoked", target=user, target_repr=user.username,
                     before={"token_key": key})


def api_tokens_revoke_all(*, user: Any) -> int:
    """Revoke every API token of ``user`` (a token that may have leaked, wherever it is); audit it; return how many."""
    from knox.models import get_token_model

    with transaction.atomic():
        keys = sorted(get_token_model().objects.filter(user=user).values_list("token_key", flat=True))
        get_token_model().objects.filter(user=user).delete()
        audit_record(actor=user, action="api_token.revoked_all", target=user, target_repr=user.username,
                     before={"token_keys": keys}, after={"revoked": len(keys)})
    return len(keys)


def user_record_admin_change(*, actor: Any, user: Any, before: dict[str, Any] | None) -> None:
    """Audit a user created or changed through the admin (called inside its transaction)."""
    after = _user_snapshot(user)
    if before == after:
        return
    audit_record(
        actor=actor,
        action="user.created" if before is None else "user.updated",
        target=user,
        target_repr=user.username,
        before=before,
        after=after,
    )


def user_snapshot(user: Any) -> dict[str, Any] | None:
    """Return the audited view of a user (None for an unsaved one)."""
    return _user_snapshot(user) if user.pk else None


def user_record_admin_delete(*, actor: Any, user: Any) -> None:
    """Audit a user deleted through the admin (called inside its transaction)."""
    audit_record(actor=actor, action="user.deleted", target=user, target_repr=user.username, before=_user_snapshot(user))


def user_record_password_change(*, actor: Any, user: Any) -> None:
    """Audit a password set through the admin (never the password itself)."""
    audit_record(actor=actor, action="user.password_changed", target=user, target_repr=user.username,
                 after={"username": user.username, "password_changed": True})
