"""The compliance workspace in the admin: a start page per role, one page per version, decisions as buttons.

Built for the people who decide, not for database rows. Every page reads through one
selector (riskmodels/selectors.py, ``workspace_*``) and every button posts to a view that
makes one call into a lifecycle or findings service. The buttons drawn are the policy's
answer; a forced POST of a hidden one is refused by the service itself, with the same
403 and message as the API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from governance.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from riskmodels.models import Finding
from riskmodels.selectors import (
    alert_get_for_acknowledgement,
    model_version_get_for_user,
    workspace_finding_get_for_user,
    workspace_queues_for_user,
    workspace_version_actions,
    workspace_version_dossier_for_user,
)
from riskmodels.services.alerts import COMMENT_MAX_CHARS, alert_acknowledge
from riskmodels.services.docpack import documentation_pack_request
from riskmodels.services.findings import (
    finding_accept,
    finding_close,
    finding_dismiss,
    finding_raise,
    finding_remediate,
)
from riskmodels.services.lifecycle import (
    CONCLUSIONS,
    version_approve,
    version_promote,
    version_reject,
    version_retire,
    version_return,
    version_submit,
    version_take,
    version_validate,
)

TEXTAREA = forms.Textarea(attrs={"rows": 4, "cols": 80})


class DecisionForm(forms.Form):
    rationale = forms.CharField(widget=TEXTAREA, help_text="Why: recorded with the decision and in the audit log.")


class ValidateForm(DecisionForm):
    conclusion = forms.ChoiceField(choices=[(c, c.replace("_", " ")) for c in CONCLUSIONS])
    conditions = forms.CharField(required=False, widget=TEXTAREA,
                                 help_text="Required when the version is fit for purpose with conditions.")


class ApproveForm(DecisionForm):
    policy_exception = forms.CharField(required=False, widget=TEXTAREA,
                                       help_text="Only when a metric is below the model's performance floors: "
                                                 "why the breach is accepted.")


class FindingRaiseForm(forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=TEXTAREA)
    category = forms.ChoiceField(choices=Finding.Category.choices)
    severity = forms.ChoiceField(choices=Finding.Severity.choices)
    due_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="YYYY-MM-DD")


class RemediateForm(forms.Form):
    remediation = forms.CharField(widget=TEXTAREA, help_text="What was changed, or why no change is needed.")


class CloseForm(forms.Form):
    evidence = forms.CharField(widget=TEXTAREA, help_text="The evidence that the finding is resolved.")


class AcceptForm(forms.Form):
    title = forms.CharField(max_length=200, required=False, help_text="Leave empty to keep the proposed title.")
    severity = forms.ChoiceField(choices=[("", "keep the proposed severity"), *Finding.Severity.choices],
                                 required=False)

    def clean(self) -> dict[str, Any]:
        # Only what the validator changed goes to the service.
        return {k: v for k, v in super().clean().items() if v}


class DismissForm(forms.Form):
    reason = forms.CharField(widget=TEXTAREA, help_text="Why this is not an issue: recorded with the finding.")


class DocumentationPackForm(forms.Form):
    """Nothing to fill in: the pack is made from the version's records; the form is the confirmation."""


class AcknowledgeForm(forms.Form):
    comment = forms.CharField(max_length=COMMENT_MAX_CHARS, widget=TEXTAREA,
                              help_text="What is being done about it: recorded with the alert and in the audit log.")


@dataclass(frozen=True)
class Move:
    """One button of the version page: its form and the service it calls."""

    label: str
    form: type[forms.Form]
    service: Callable[..., Any]


DECISIONS: dict[str, Move] = {
    "submit": Move("Submit for validation", DecisionForm, version_submit),
    "take": Move("Take for validation", DecisionForm, version_take),
    "validate": Move("Conclude: validated", ValidateForm, version_validate),
    "return": Move("Return to the developer", DecisionForm, version_return),
    "reject": Move("Reject", DecisionForm, version_reject),
    "approve": Move("Approve", ApproveForm, version_approve),
    "promote": Move("Promote to champion", DecisionForm, version_promote),
    "retire": Move("Retire", DecisionForm, version_retire),
}

# Finding moves: the form, the service, and the keyword the service takes the finding by.
FINDING_MOVES: dict[str, Move] = {
    "remediate": Move("Answer with a remediation", RemediateForm, finding_remediate),
    "close": Move("Close with evidence", CloseForm, finding_close),
    "accept": Move("Accept the proposed finding", AcceptForm, finding_accept),
    "dismiss": Move("Dismiss the proposed finding", DismissForm, finding_dismiss),
}


class Workspace:
    """The workspace's views, bound to the admin site whose chrome (and login) they use."""

    def __init__(self, admin_site: AdminSite) -> None:
        self.admin_site = admin_site

    def urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("workspace/", view(self.start_view), name="riskmodels_workspace"),
            path("<int:pk>/workspace/", view(self.version_view), name="riskmodels_workspace_version"),
            path("<int:pk>/workspace/decide/<str:action>/", view(self.decide_view),
                 name="riskmodels_workspace_decide"),
            path("<int:pk>/workspace/findings/raise/", view(self.finding_raise_view),
                 name="riskmodels_workspace_finding_raise"),
            path("workspace/findings/<int:finding_id>/<str:move>/", view(self.finding_move_view),
                 name="riskmodels_workspace_finding_move"),
            path("<int:pk>/workspace/documentation-pack/", view(self.documentation_pack_view),
                 name="riskmodels_workspace_documentation_pack"),
            path("workspace/alerts/<int:alert_id>/acknowledge/", view(self.alert_acknowledge_view),
                 name="riskmodels_workspace_alert_acknowledge"),
        ]

    def _render(self, request: HttpRequest, template: str, title: str, status: int = 200,
                **context: Any) -> TemplateResponse:
        context = {**self.admin_site.each_context(request), "title": title, **context}
        return TemplateResponse(request, f"admin/riskmodels/workspace/{template}", context, status=status)

    def _refused(self, request: HttpRequest, exc: PermissionDenied) -> TemplateResponse:
        # The service's refusal, as the API gives it: 403 with its reason and code.
        return self._render(request, "refused.html", "Not allowed", status=403, message=exc.message, code=exc.code)

    @staticmethod
    def _version_url(pk: int) -> str:
        return reverse("admin:riskmodels_workspace_version", args=[pk])

    def start_view(self, request: HttpRequest) -> HttpResponse:
        try:
            queues = workspace_queues_for_user(user=request.user)
        except PermissionDenied as exc:
            return self._refused(request, exc)
        return self._render(request, "start.html", "My workspace", queues=queues)

    def version_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        dossier, refused = self._fetch(request, workspace_version_dossier_for_user, pk)
        if refused is not None:
            return refused
        return self._render(request, "version.html", str(dossier.version), dossier=dossier)

    def _form_page(self, request: HttpRequest, *, title: str, form: forms.Form, back: str, subject: Any,
                   status: int = 200) -> TemplateResponse:
        return self._render(request, "decide.html", title, status=status, form=form, back=back, subject=subject)

    def _run(self, request: HttpRequest, form: forms.Form, call: Callable[[], Any], done: str,
             back: str) -> HttpResponse | None:
        """Call the service; return the response for its outcome, or None to show the form again with its error."""
        try:
            call()
        except PermissionDenied as exc:
            return self._refused(request, exc)
        except Conflict as exc:
            # Nothing changed (the service's conditional update did not apply): say why, back on the page.
            messages.error(request, exc.message)
            return HttpResponseRedirect(back)
        except ValidationFailed as exc:
            field = exc.details.get("field")
            form.add_error(field if field in form.fields else None, exc.message)
            return None
        messages.success(request, done)
        return HttpResponseRedirect(back)

    def _fetch(self, request: HttpRequest, getter: Callable[..., Any], id: int) -> tuple[Any, HttpResponse | None]:
        """Return (the object the user may see, None), or (None, the refusal page); 404 when it does not exist."""
        try:
            return getter(user=request.user, id=id), None
        except NotFound:
            raise Http404 from None
        except PermissionDenied as exc:
            return None, self._refused(request, exc)

    def _form_flow(self, request: HttpRequest, *, form_class: type[forms.Form], title: str, back: str, subject: Any,
                   call: Callable[..., Any], done: str) -> HttpResponse:
        """Show the form; on POST make the one service call with its cleaned data, or show the form again (400)."""
        if request.method != "POST":
            return self._form_page(request, title=title, form=form_class(), back=back, subject=subject)
        form = form_class(request.POST)
        if form.is_valid():
            response = self._run(request, form, lambda: call(actor=request.user, **form.cleaned_data), done, back)
            if response is not None:
                return response
        return self._form_page(request, title=title, form=form, back=back, subject=subject, status=400)

    def decide_view(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        decision = DECISIONS.get(action)
        if decision is None:
            raise Http404
        version, refused = self._fetch(request, model_version_get_for_user, pk)
        if refused is not None:
            return refused
        back = self._version_url(version.pk)
        if request.method != "POST" and action not in {
                a.name for a in workspace_version_actions(user=request.user, version=version)}:
            messages.error(request, f"“{decision.label}” is not open to you on {version} now.")
            return HttpResponseRedirect(back)
        return self._form_flow(request, form_class=decision.form, title=f"{decision.label}: {version}", back=back,
                               subject=version, call=lambda **data: decision.service(version=version, **data),
                               done=f"{decision.label}: recorded.")

    def finding_raise_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version, refused = self._fetch(request, model_version_get_for_user, pk)
        if refused is not None:
            return refused
        return self._form_flow(request, form_class=FindingRaiseForm, title=f"Raise a finding on {version}",
                               back=self._version_url(version.pk), subject=version,
                               call=lambda **data: finding_raise(version=version, **data), done="Finding raised.")

    def finding_move_view(self, request: HttpRequest, finding_id: int, move: str) -> HttpResponse:
        step = FINDING_MOVES.get(move)
        if step is None:
            raise Http404
        finding, refused = self._fetch(request, workspace_finding_get_for_user, finding_id)
        if refused is not None:
            return refused
        return self._form_flow(request, form_class=step.form, title=f"{step.label}: finding #{finding.pk}",
                               back=self._version_url(finding.model_version_id), subject=finding,
                               call=lambda **data: step.service(finding=finding, **data),
                               done=f"{step.label}: recorded.")

    def documentation_pack_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version, refused = self._fetch(request, model_version_get_for_user, pk)
        if refused is not None:
            return refused
        return self._form_flow(request, form_class=DocumentationPackForm,
                               title=f"Generate a documentation pack of {version}",
                               back=self._version_url(version.pk) + "#documentation-packs", subject=version,
                               call=lambda **data: documentation_pack_request(model_version=version, **data),
                               done="Documentation pack queued: it appears here when the worker has made it.")

    def alert_acknowledge_view(self, request: HttpRequest, alert_id: int) -> HttpResponse:
        # The selector refuses (403) before the form is drawn to anyone who may not acknowledge.
        alert, refused = self._fetch(request, alert_get_for_acknowledgement, alert_id)
        if refused is not None:
            return refused
        return self._form_flow(request, form_class=AcknowledgeForm, title=f"Acknowledge alert #{alert.pk}",
                               back=reverse("admin:riskmodels_workspace") + "#alerts", subject=alert,
                               call=lambda **data: alert_acknowledge(alert=alert, **data),
                               done=f"Alert #{alert.pk} acknowledged.")
