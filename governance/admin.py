"""Admin for compliance staff: the read-only audit log, and users whose changes are audited."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from governance.accounts import (
    user_record_admin_change,
    user_record_admin_delete,
    user_record_password_change,
    user_snapshot,
)
from governance.admin_base import ReadOnlyAdminMixin
from governance.logins import login_failure_record, login_lockout
from governance.models import AuditEvent

User = get_user_model()


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Show the audit trail; nobody can add, change or delete a row here."""

    list_display = ["seq", "created_at", "actor_username", "action", "target_type", "target_id", "target_repr",
                    "short_hash"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor_username", "action", "target_repr", "target_id", "request_id", "hash"]
    ordering = ["-seq"]
    readonly_fields = ["seq", "created_at", "actor_username", "action", "target_type", "target_id", "target_repr",
                       "before", "after", "request_id", "prev_hash", "hash"]
    exclude = ["actor"]
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="hash")
    def short_hash(self, obj: AuditEvent) -> str:
        return obj.hash[:12] + "…"


class AuditedUserAdmin(UserAdmin):
    """The stock user admin, with every create, change (including roles) and delete audited."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Snapshot from the database, before the form's changes are saved.
        obj._audit_before = user_snapshot(User.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # Groups (roles) are saved here, so the audit event is written after them,
        # still inside the admin's transaction.
        user_record_admin_change(actor=request.user, user=form.instance, before=form.instance._audit_before)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> Any:
        # The stock view saves the new password itself; record it in the same transaction.
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                user_record_password_change(actor=request.user, user=User.objects.get(pk=id))
        return response

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        user_record_admin_delete(actor=request.user, user=obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        with transaction.atomic():
            for user in queryset:
                user_record_admin_delete(actor=request.user, user=user)
            super().delete_queryset(request, queryset)


class AuditedAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form, with every refused sign-in audited (the lockout itself is django-axes')."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        was_locked = login_lockout(request=self.request, username=username) is not None
        try:
            return super().clean()
        except ValidationError:
            login_failure_record(request=self.request, username=username, interface="admin", was_locked=was_locked)
            raise


def lockout_response(request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    """The page django-axes shows instead of the sign-in form while a username is locked out (AXES_LOCKOUT_CALLABLE)."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    lockout = login_lockout(request=request, username=username)
    context = {**admin.site.each_context(request), "username": username, "lockout": lockout,
               "failure_limit": settings.AXES_FAILURE_LIMIT}
    response = TemplateResponse(request, "admin/locked_out.html", context, status=429)
    if lockout is not None:
        response["Retry-After"] = str(lockout.retry_after)
    return response.render()


admin.site.login_form = AuditedAdminAuthenticationForm
admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)
