"""Legal holds in the admin: the model's page lists its holds; a compliance officer places or lifts one on a
small form that calls the service (whose refusals and messages are the ones shown)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from governance.exceptions import NotFound, PermissionDenied, ServiceError
from governance.policy import Capability, allowed, refusal
from riskmodels.models import LegalHold, RegisteredModel
from riskmodels.selectors.retention import legal_hold_get_for_user, legal_hold_list_for_user
from riskmodels.services.legal_holds import legal_hold_lift, legal_hold_place


class ReasonForm(forms.Form):
    # Not required here: the service's rule (and message) for an empty reason is the one that applies.
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
                             help_text="Why: recorded with the hold and in the audit log.")


def legal_hold_context(request: HttpRequest, model: RegisteredModel) -> dict[str, Any]:
    """Return the model page's legal-hold block: its holds, and whether this user may place or lift them."""
    if not allowed(request.user, Capability.DOMAIN_READ):
        return {}
    holds = list(legal_hold_list_for_user(user=request.user, name=model.name))
    return {"legal_holds": holds, "legal_hold_open": any(h.is_open for h in holds),
            "may_manage_legal_holds": allowed(request.user, Capability.LEGAL_HOLD_MANAGE)}


class LegalHoldAdminMixin:
    """The place and lift pages of the registered model's admin."""

    def legal_hold_urls(self) -> list[Any]:
        view = self.admin_site.admin_view  # type: ignore[attr-defined]
        return [path("<int:pk>/legal-hold/", view(self.legal_hold_place_view),
                     name="riskmodels_registeredmodel_legal_hold_place"),
                path("legal-holds/<int:hold_id>/lift/", view(self.legal_hold_lift_view),
                     name="riskmodels_registeredmodel_legal_hold_lift")]

    def legal_hold_place_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        model = RegisteredModel.objects.filter(pk=pk).first()
        if model is None:
            raise Http404
        return self._legal_hold_form(request, model, None, lambda reason: legal_hold_place(
            user=request.user, model=model, reason=reason), f"Legal hold placed on {model.name}.")

    def legal_hold_lift_view(self, request: HttpRequest, hold_id: int) -> HttpResponse:
        try:
            hold = legal_hold_get_for_user(user=request.user, id=hold_id)
        except NotFound:
            raise Http404 from None
        except PermissionDenied as exc:
            return self._legal_hold_page(request, None, None, None, status=403, refused=exc.message)
        return self._legal_hold_form(request, hold.registered_model, hold, lambda reason: legal_hold_lift(
            user=request.user, hold=hold, reason=reason), f"Legal hold {hold.pk} on {hold.registered_model.name} lifted.")

    def _legal_hold_form(self, request: HttpRequest, model: RegisteredModel, hold: LegalHold | None, act: Any,
                         done: str) -> HttpResponse:
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                act(form.cleaned_data["reason"])
            except PermissionDenied as exc:
                return self._legal_hold_page(request, model, hold, None, status=403, refused=exc.message)
            except ServiceError as exc:
                form.add_error("reason" if exc.details.get("field") == "reason" else None, exc.message)
            else:
                messages.success(request, done)
                return HttpResponseRedirect(reverse("admin:riskmodels_registeredmodel_change", args=[model.pk]))
        elif not allowed(request.user, Capability.LEGAL_HOLD_MANAGE):
            return self._legal_hold_page(request, model, hold, None, status=403,
                                         refused=refusal(request.user, Capability.LEGAL_HOLD_MANAGE))
        return self._legal_hold_page(request, model, hold, form, status=400 if form.errors else 200)

    def _legal_hold_page(self, request: HttpRequest, model: RegisteredModel | None, hold: LegalHold | None,
                         form: forms.Form | None, status: int, refused: str | None = None) -> TemplateResponse:
        title = (f"Lift legal hold {hold.pk} on {model.name}" if hold and model
                 else f"Place a legal hold on {model.name}" if model else "Not allowed")
        context = {**self.admin_site.each_context(request), "title": title,  # type: ignore[attr-defined]
                   "opts": RegisteredModel._meta, "model": model, "hold": hold, "form": form, "refusal": refused}
        return TemplateResponse(request, "admin/riskmodels/registeredmodel/legal_hold.html", context, status=status)
