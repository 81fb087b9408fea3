"""The decision ledger in the admin: read-only decisions and overrides, and the one write, an override form.

The ledger is append-only, so nobody adds, changes or deletes a row here (not even in bulk).
Every page reads through the decision selectors (``riskmodels/selectors/decisions.py``); the
override form makes one call into ``decision_override``, which checks the policy itself, so the
link drawn for underwriters is only a convenience.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from governance.admin_base import ReadOnlyAdminMixin
from governance.exceptions import NotFound, PermissionDenied, ServiceError
from governance.policy import Capability, allowed, require
from riskmodels.models import CreditDecision, DecisionOverride, Outcome, OverrideReason
from riskmodels.selectors.decisions import (
    DecisionStats,
    credit_decision_get_for_user,
    credit_decision_list_for_user,
    decision_override_list_for_user,
)
from riskmodels.services.overrides import decision_override


def _override_of(decision: CreditDecision) -> DecisionOverride | None:
    # The reverse one-to-one raises (an AttributeError subclass) when there is none.
    return getattr(decision, "override", None)


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.1f} %"


def _json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def _key_values(data: dict[str, Any]) -> str:
    rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>",
                            ((k, v if isinstance(v, str | int | float) else json.dumps(v, default=str))
                             for k, v in sorted(data.items())))
    return format_html("<table>{}</table>", rows)


class LedgerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """A read-only ledger page: seen by whoever may read decisions, with no bulk actions at all."""

    actions = None  # no "delete selected": the ledger is append-only
    show_full_result_count = False  # a count of a large ledger on every page is not worth its query

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return allowed(request.user, Capability.DECISION_READ) and super().has_view_permission(request, obj)


@admin.register(CreditDecision)
class CreditDecisionAdmin(LedgerAdmin):
    """The decision ledger: every scored application; an underwriter's override is the one action offered."""

    list_display = ["id", "created_at", "reference", "registered_model", "version", "decisive", "decision", "pd_4",
                    "band", "override_outcome"]
    list_display_links = ["id", "reference"]
    list_filter = ["registered_model", "outcome", "decisive", "source"]
    date_hierarchy = "created_at"
    search_fields = ["=reference"]
    search_help_text = "The application's reference, exactly."
    fields = ["reference", "created_at", "registered_model", "model_version", "decisive", "source", "decision",
              "pd_4", "band", "override_summary", "reasons_table", "flags_list", "policy_table", "fingerprint_record",
              "base_log_odds", "contributions_json", "features_json", "features_sha256", "request_id", "job", "row",
              "actor_username"]
    # Django links a read-only foreign key to its admin page whatever the user may see there; an
    # underwriter (no domain read) gets the names instead of links to a 403.
    AS_TEXT = {"registered_model": "model_name", "model_version": "model_version_name", "job": "job_id_text"}
    readonly_fields = [*fields, *AS_TEXT.values()]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if allowed(request.user, Capability.DOMAIN_READ):
            return self.fields
        return [self.AS_TEXT.get(name, name) for name in self.fields]

    @admin.display(description="registered model")
    def model_name(self, obj: CreditDecision) -> str:
        return obj.registered_model.name

    @admin.display(description="model version")
    def model_version_name(self, obj: CreditDecision) -> str:
        return str(obj.model_version)

    @admin.display(description="batch job")
    def job_id_text(self, obj: CreditDecision) -> str:
        return "—" if obj.job_id is None else f"job {obj.job_id}"

    def get_queryset(self, request: HttpRequest) -> QuerySet[CreditDecision]:
        try:
            return credit_decision_list_for_user(user=request.user).select_related("fingerprint")
        except PermissionDenied:
            return CreditDecision.objects.none()

    def get_urls(self) -> list[Any]:
        return [path("<int:pk>/override/", self.admin_site.admin_view(self.override_view),
                     name="riskmodels_creditdecision_override"), *super().get_urls()]

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], add: bool = False,
                           change: bool = False, form_url: str = "", obj: CreditDecision | None = None) -> Any:
        # The link is drawn where the service would accept the override; it checks again on submit.
        if (obj is not None and obj.decisive and _override_of(obj) is None
                and allowed(request.user, Capability.DECISION_OVERRIDE)):
            context["override_url"] = reverse("admin:riskmodels_creditdecision_override", args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="version")
    def version(self, obj: CreditDecision) -> str:
        return f"v{obj.model_version.version}"

    @admin.display(description="decision", ordering="outcome")
    def decision(self, obj: CreditDecision) -> str:
        return obj.get_outcome_display()

    @admin.display(description="PD", ordering="pd")
    def pd_4(self, obj: CreditDecision) -> str:
        return f"{obj.pd:.4f}"

    @admin.display(description="overridden to")
    def override_outcome(self, obj: CreditDecision) -> str:
        override = _override_of(obj)
        return override.get_outcome_display() if override else "—"

    @admin.display(description="override")
    def override_summary(self, obj: CreditDecision) -> str:
        override = _override_of(obj)
        if override is None:
            return "none" if obj.decisive else "none (a shadow decision decides nothing and is not overridden)"
        return format_html(
            '<div id="override" data-outcome="{}">{} → <strong>{}</strong> by {} on {}: {}<br>{}</div>',
            override.outcome, obj.get_outcome_display(), override.get_outcome_display(), override.actor_username,
            override.created_at.strftime("%Y-%m-%d %H:%M UTC"), override.get_reason_display(), override.text)

    @admin.display(description="reasons")
    def reasons_table(self, obj: CreditDecision) -> str:
        if not obj.reasons:
            return "none (no reason reached the materiality rule)"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (r.get("rank"), r.get("feature"), r.get("text"), f"{r['contribution']:+.4f}",
             _percent(r.get("share")) if r.get("share") is not None else "—") for r in obj.reasons))
        return format_html('<table id="reasons"><thead><tr><th>rank</th><th>feature</th><th>reason</th>'
                           "<th>contribution (log-odds of default)</th><th>share of the adverse push</th></tr>"
                           "</thead><tbody>{}</tbody></table>", rows)

    @admin.display(description="flags")
    def flags_list(self, obj: CreditDecision) -> str:
        if not obj.flags:
            return "none"
        items = format_html_join("", "<li>{}{}</li>", (
            (flag, format_html(": {}", json.dumps(obj.flag_details[flag], default=str))
             if flag in obj.flag_details else "") for flag in obj.flags))
        return format_html('<ul id="flags">{}</ul>', items)

    @admin.display(description="scoring policy")
    def policy_table(self, obj: CreditDecision) -> str:
        return _key_values(obj.policy)

    @admin.display(description="explainer fingerprint")
    def fingerprint_record(self, obj: CreditDecision) -> str:
        return format_html("<code>{}</code>{}", obj.fingerprint_id, _key_values(obj.fingerprint.data))

    @admin.display(description="contributions (log-odds)")
    def contributions_json(self, obj: CreditDecision) -> str:
        return _json(dict(sorted(obj.contributions.items(), key=lambda item: -abs(item[1]))))

    @admin.display(description="inputs")
    def features_json(self, obj: CreditDecision) -> str:
        return "not kept (only their hash)" if obj.features is None else _json(obj.features)

    def override_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Show the override form; on POST make the one service call, or show its refusal on the form."""
        try:
            require(request.user, Capability.DECISION_OVERRIDE)
            decision = credit_decision_get_for_user(user=request.user, id=pk)
        except NotFound:
            raise Http404 from None
        except PermissionDenied as exc:
            return self._override_page(request, None, None, status=403, refusal=exc.message)
        form = OverrideForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                override = decision_override(actor=request.user, decision=decision, **form.cleaned_data)
            except PermissionDenied as exc:
                return self._override_page(request, decision, None, status=403, refusal=exc.message)
            except ServiceError as exc:
                field = exc.details.get("field")
                form.add_error(field if field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Decision {decision.pk} ({decision.reference}) overridden: "
                                          f"{decision.get_outcome_display()} → {override.get_outcome_display()}.")
                return HttpResponseRedirect(reverse("admin:riskmodels_creditdecision_change", args=[decision.pk]))
        return self._override_page(request, decision, form, status=400 if form.errors else 200)

    def _override_page(self, request: HttpRequest, decision: CreditDecision | None, form: forms.Form | None,
                       status: int, refusal: str | None = None) -> TemplateResponse:
        title = f"Override {decision}" if decision else "Not allowed"
        context = {**self.admin_site.each_context(request), "title": title, "opts": self.model._meta,
                   "decision": decision, "form": form, "refusal": refusal}
        return TemplateResponse(request, "admin/riskmodels/creditdecision/override.html", context, status=status)


class OverrideForm(forms.Form):
    """What an override needs; the service decides what is acceptable and its message is shown on refusal."""

    outcome = forms.ChoiceField(choices=[("", "---------"), *Outcome.choices], label="New outcome")
    reason = forms.ChoiceField(choices=[("", "---------"), *OverrideReason.choices])
    # Not required here: the service's rule (and message) for the text is the one that applies.
    text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
                           help_text="Why: recorded with the override and in the audit log.")


@admin.register(DecisionOverride)
class DecisionOverrideAdmin(LedgerAdmin):
    """Underwriters' overrides: which decision, from what to what, why, who and when."""

    list_display = ["id", "decision_link", "reference", "direction", "reason", "text", "who", "when"]
    list_display_links = ["id"]  # the decision column links to the decision
    list_filter = ["reason", "outcome", "decision__registered_model"]
    date_hierarchy = "created_at"
    search_fields = ["=decision__reference"]
    fields = ["decision_link", "reference", "direction", "reason", "text", "who", "when"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DecisionOverride]:
        try:
            return decision_override_list_for_user(user=request.user)
        except PermissionDenied:
            return DecisionOverride.objects.none()

    @admin.display(description="decision")
    def decision_link(self, obj: DecisionOverride) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:riskmodels_creditdecision_change",
                                                          args=[obj.decision_id]), obj.decision_id)

    @admin.display(description="reference", ordering="decision__reference")
    def reference(self, obj: DecisionOverride) -> str:
        return obj.decision.reference

    @admin.display(description="from → to")
    def direction(self, obj: DecisionOverride) -> str:
        return f"{obj.decision.get_outcome_display()} → {obj.get_outcome_display()}"

    @admin.display(description="who", ordering="actor_username")
    def who(self, obj: DecisionOverride) -> str:
        return obj.actor_username

    @admin.display(description="when", ordering="created_at")
    def when(self, obj: DecisionOverride) -> Any:
        return obj.created_at


def decision_stats_block(stats: DecisionStats, model_id: int) -> str:
    """Render a model's recent decision statistics as the read-only block of its admin page."""
    reasons = format_html_join("", '<tr><td>{}</td><td class="stats-reason" data-reason="{}">{}</td></tr>', (
        (OverrideReason(reason).label, reason, n) for reason, n in stats.overrides_by_reason.items()))
    directions = ", ".join(f"{k.replace('_to_', ' → ')}: {n}" for k, n in stats.overrides_by_direction.items())
    decisions_url = reverse("admin:riskmodels_creditdecision_changelist") + f"?registered_model__id__exact={model_id}"
    return format_html(
        '<table id="decision-stats-table">'
        '<tr><th>decisive decisions since {}</th><td id="stats-decisions"><a href="{}">{}</a></td></tr>'
        '<tr><th>approved</th><td id="stats-approve-rate">{} ({})</td></tr>'
        '<tr><th>referred · declined</th><td>{} · {}</td></tr>'
        '<tr><th>overridden</th><td id="stats-override-rate">{} ({})</td></tr>'
        '<tr><th>overrides by direction</th><td>{}</td></tr></table>'
        '<h4>Overrides by reason</h4><table id="stats-overrides-by-reason">{}</table>',
        stats.since.strftime("%Y-%m-%d"), decisions_url, stats.decisions, _percent(stats.approve_rate),
        stats.approved, stats.referred, stats.declined, _percent(stats.override_rate), stats.overridden,
        directions or "—", reasons or mark_safe("<tr><td>none</td></tr>"))
