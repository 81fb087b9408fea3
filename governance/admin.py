"""Admin for compliance staff: the read-only audit log, and users whose changes are audited."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from governance.accounts import (
    user_record_admin_change,
    user_record_admin_delete,
    user_record_password_change,
    user_snapshot,
)
from governance.admin_base import ReadOnlyAdminMixin
from governance.exceptions import ServiceError
from governance.models import AuditEvent
from riskmodels.services.audit_export import FILE_FORMATS, audit_events_export

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

    change_list_template = "admin/governance/auditevent/change_list.html"

    @admin.display(description="hash")
    def short_hash(self, obj: AuditEvent) -> str:
        return obj.hash[:12] + "…"

    def get_urls(self) -> list[Any]:
        return [path("export/", self.admin_site.admin_view(self.export_view), name="governance_auditevent_export"),
                *super().get_urls()]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """Export the trail for an examiner through the same service as the API; show the manifest and links."""
        form = AuditExportForm(request.POST or None)
        manifest = downloads = None
        if request.method == "POST" and form.is_valid():
            try:
                export = audit_events_export(actor=request.user, **form.cleaned_data)
            except ServiceError as exc:
                form.add_error(None, exc.message)
            else:
                manifest = {**export.manifest, "manifest_sha256": export.manifest_sha256}
                downloads = {name: reverse("audit-export-file", args=[export.id, name])
                             for name in (*export.manifest["files"], "manifest.json")}
                downloads["bundle.zip"] = reverse("audit-export-bundle", args=[export.id])
        context = {**self.admin_site.each_context(request), "title": "Export the audit trail for an examiner",
                   "form": form, "opts": self.model._meta, "manifest": manifest, "downloads": downloads,
                   "verifier": reverse("audit-export-verifier")}
        return TemplateResponse(request, "admin/governance/auditevent/export.html", context)


class AuditExportForm(forms.Form):
    """The export's filters, as the API takes them (the service validates them)."""

    file_format = forms.ChoiceField(choices=[(f, f) for f in FILE_FORMATS], initial="jsonl")
    model = forms.CharField(required=False, help_text="A registered model's name.")
    actor_username = forms.CharField(required=False, label="Actor")
    action = forms.CharField(required=False, help_text="Exactly, or a family ending in '.', e.g. model_version.")
    since = forms.CharField(required=False, help_text="YYYY-MM-DD or ISO datetime (UTC).")
    until = forms.CharField(required=False, help_text="YYYY-MM-DD (the whole day) or ISO datetime.")


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


admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)
