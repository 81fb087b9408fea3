"""Services for users, roles and API tokens; every change is audited."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from governance.audit import audit_record
from governance.exceptions import ValidationFailed
from governance.policy import admin_permissions_of
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
    }


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
) -> tuple[Any, bool]:
    """Create a user with ``role``, or give an existing user that single role; audit it.

    Users get staff status so they can sign in to the admin, where group permissions
    limit what they see. Returns ``(user, created)``.
    """
    try:
        role = Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise ValidationFailed(f"unknown role {role!r}; use one of: {allowed}", code="unknown_role") from None
    if not username or len(username) > 150:
        raise ValidationFailed("username must be 1 to 150 characters", code="invalid_username")

    with transaction.atomic():
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
