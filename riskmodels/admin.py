"""Admin for the dataset inventory: read-only versions, and an upload form that calls the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from governance.admin_base import ReadOnlyAdminMixin
from governance.exceptions import NotFound, PermissionDenied, ServiceError, ValidationFailed
from governance.policy import Capability, allowed
from riskmodels.models import (
    Alert,
    Dataset,
    ProtectedCharacteristic,
    DatasetVersion,
    Evaluation,
    ExplanationPlot,
    ExplanationReport,
    Job,
    ModelVersion,
    ReasonText,
    RegisteredModel,
)
from riskmodels.admin_decisions import decision_stats_block
from riskmodels.admin_retention import LegalHoldAdminMixin, legal_hold_context
from riskmodels.admin_workspace import Workspace
from riskmodels.apis.files import stored_png
from riskmodels.apis.monitoring_plots import png_response
from riskmodels.selectors import evaluation_get_for_user
from riskmodels.selectors.decisions import decision_stats_for_user
from riskmodels.services.datasets import (
    dataset_roles_parse,
    dataset_version_create,
    protected_characteristic_delete,
    protected_characteristic_save,
)
from riskmodels.services.monitoring_plots import fairness_plot_render, monitoring_plot_render, monitoring_plots_available
from riskmodels.services.reasons import reason_text_delete, reason_text_set
from riskmodels.services.reviews import registered_model_inventory_update


class EditedWithCapability:
    """An admin page whose add, change and delete follow one capability of the policy (and Django's permissions)."""

    edit_capability: Capability

    def has_add_permission(self, request: HttpRequest) -> bool:
        return allowed(request.user, self.edit_capability) and super().has_add_permission(request)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return allowed(request.user, self.edit_capability) and super().has_change_permission(  # type: ignore[misc]
            request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return allowed(request.user, self.edit_capability) and super().has_delete_permission(  # type: ignore[misc]
            request, obj)


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Records of what happened: visible, never edited or deleted through the admin."""


class RecordInline(admin.TabularInline):
    """A parent's records listed on its page, each linking to its own; none added or removed here."""

    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(self.fields)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="e.g. german-credit; an existing name gets a new version.")
    file = forms.FileField(help_text="CSV (UTF-8 with a header row) or Parquet.")
    target = forms.CharField(required=False, help_text="The binary target column, e.g. creditability.")
    roles = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text='JSON: {"column": "protected" | "identifier" | "excluded" | "feature"}. Others are features.',
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_roles(self) -> dict[str, str]:
        try:
            return dataset_roles_parse(self.cleaned_data.get("roles"))
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from None


class DatasetVersionInline(RecordInline):
    model = DatasetVersion
    fields = ["version", "sha256", "n_rows", "n_columns", "target", "created_at", "created_by"]


@admin.register(Dataset)
class DatasetAdmin(ReadOnlyAdmin):
    list_display = ["name", "description", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["name", "description", "created_at", "created_by"]
    inlines = [DatasetVersionInline]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    """Inventory of dataset versions; "Add" is an upload that goes through the same service as the API."""

    list_display = ["__str__", "n_rows", "n_columns", "target", "short_sha", "warning_count", "created_at", "created_by"]
    list_filter = ["dataset"]
    search_fields = ["dataset__name", "sha256", "source_filename"]
    fields = ["dataset", "version", "sha256", "storage_path", "size_bytes", "n_rows", "n_columns", "target",
              "source_filename", "source_format", "note", "created_at", "created_by", "schema_table",
              "quality_warnings", "profile"]
    readonly_fields = fields

    @admin.display(description="SHA-256")
    def short_sha(self, obj: DatasetVersion) -> str:
        return obj.sha256[:12] + "…"

    @admin.display(description="warnings")
    def warning_count(self, obj: DatasetVersion) -> int:
        return len(obj.profile.get("warnings", []))

    @admin.display(description="schema")
    def schema_table(self, obj: DatasetVersion) -> str:
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((c["name"], c["dtype"], c["role"]) for c in obj.schema))
        return format_html("<table><thead><tr><th>column</th><th>type</th><th>role</th></tr></thead>"
                           "<tbody>{}</tbody></table>", rows)

    @admin.display(description="data-quality warnings")
    def quality_warnings(self, obj: DatasetVersion) -> str:
        warnings = obj.profile.get("warnings", [])
        if not warnings:
            return "none"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((w,) for w in warnings)))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        return [path("upload/", self.admin_site.admin_view(self.upload_view), name="riskmodels_datasetversion_upload"),
                *super().get_urls()]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:riskmodels_datasetversion_upload"))

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            return HttpResponse("You may not register datasets.", status=403)
        form = DatasetUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            source = upload.temporary_file_path() if hasattr(upload, "temporary_file_path") else upload
            try:
                version, created = dataset_version_create(
                    actor=request.user, name=form.cleaned_data["name"], source=source, filename=upload.name,
                    size=upload.size, target=form.cleaned_data["target"] or None, roles=form.cleaned_data["roles"],
                    description=form.cleaned_data["description"],
                )
            except ServiceError as exc:
                form.add_error(None, exc.message)
            else:
                verb = "Registered" if created else "Identical content already registered as"
                messages.success(request, f"{verb} {version} (sha256 {version.sha256[:12]}…).")
                return HttpResponseRedirect(reverse("admin:riskmodels_datasetversion_change", args=[version.pk]))
        context = {**self.admin_site.each_context(request), "title": "Upload a dataset version", "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/riskmodels/datasetversion/upload.html", context)


def png_or_404(paths: dict[str, str], name: str) -> FileResponse:
    """Serve the stored PNG called ``name`` from ``paths``, or 404."""
    if name not in paths:
        raise Http404
    return stored_png(paths[name])


def drawn_png(draw: Callable[[], bytes]) -> HttpResponse:
    """Serve the PNG ``draw()`` returns; the service's refusals become the admin's 403 and 404."""
    try:
        return png_response(draw())
    except PermissionDenied as exc:
        raise DjangoPermissionDenied(str(exc)) from None
    except NotFound as exc:
        raise Http404(str(exc)) from None


def fairness_block(evaluation: Evaluation) -> str:
    """Render an evaluation's fairness tables with the approval-by-group chart of each column."""
    return render_to_string("admin/riskmodels/fairness.html", {"fairness": evaluation.fairness,
                                                              "evaluation_id": evaluation.pk})


def progress_bar(job: Job) -> str:
    """Render a job's progress as an HTML progress bar with its stage."""
    return format_html('<progress max="100" value="{}" title="{}%">{}%</progress> {} · {}',
                       job.progress_percent, job.progress_percent, job.progress_percent, job.status,
                       job.progress_stage)


class ModelVersionInline(RecordInline):
    model = ModelVersion
    fields = ["version", "algorithm", "dataset_version", "artifact_sha256", "created_at", "created_by_username"]


INVENTORY_FIELDS = ["risk_tier", "model_type", "business_use", "limitations", "owner", "review_cadence_months",
                    "min_auc", "min_ks", "max_brier", "max_calibration_gap"]
RECORD_FIELDS = ["name", "owner_team", "purpose", "description", "next_review_date", "created_at", "created_by"]


class RegisteredModelInventoryForm(forms.ModelForm):
    """The inventory fields a compliance officer sets; the ranges are the service's, so a bad value is a form error."""

    review_cadence_months = forms.IntegerField(required=False, min_value=1, max_value=120,
                                               help_text="Months between periodic reviews; empty: the tier's default.")
    min_auc = forms.FloatField(required=False, min_value=0, max_value=1)
    min_ks = forms.FloatField(required=False, min_value=0, max_value=1)
    max_brier = forms.FloatField(required=False, min_value=0, max_value=1)
    max_calibration_gap = forms.FloatField(required=False, min_value=0, max_value=1)

    class Meta:
        model = RegisteredModel
        fields = INVENTORY_FIELDS


DECISION_STATS_DAYS = 30


@admin.register(RegisteredModel)
class RegisteredModelAdmin(LegalHoldAdminMixin, admin.ModelAdmin):
    """The model inventory: compliance officers set tier, owner, cadence and floors (through the service, audited)."""

    form = RegisteredModelInventoryForm
    list_display = ["name", "risk_tier", "model_type", "owner", "next_review_date", "owner_team", "created_at"]
    list_filter = ["risk_tier", "model_type"]
    search_fields = ["name", "owner_team", "purpose"]
    fields = [*RECORD_FIELDS[:4], *INVENTORY_FIELDS, *RECORD_FIELDS[4:]]
    inlines = [ModelVersionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # models are registered by developers, through the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return allowed(request.user, Capability.MODEL_INVENTORY_EDIT)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return RECORD_FIELDS if self.has_change_permission(request, obj) else self.fields

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], add: bool = False,
                           change: bool = False, form_url: str = "", obj: RegisteredModel | None = None) -> Any:
        # A read-only block below the form (templates/admin/riskmodels/registeredmodel/change_form.html).
        if obj is not None and allowed(request.user, Capability.DECISION_READ):
            context["decision_stats"] = decision_stats_block(
                decision_stats_for_user(user=request.user, model=obj, days=DECISION_STATS_DAYS), obj.pk)
            context["decision_stats_days"] = DECISION_STATS_DAYS
        if obj is not None and allowed(request.user, Capability.DOMAIN_READ):
            context["monitoring_plots"] = [
                (plot, reverse("admin:riskmodels_registeredmodel_monitoring_plot", args=[obj.pk, plot]))
                for plot in monitoring_plots_available(user=request.user, model=obj)]
        if obj is not None:
            context.update(legal_hold_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self) -> list[Any]:
        return [path("<int:pk>/monitoring/<str:plot>.png", self.admin_site.admin_view(self.monitoring_plot_view),
                     name="riskmodels_registeredmodel_monitoring_plot"), *self.legal_hold_urls(), *super().get_urls()]

    def monitoring_plot_view(self, request: HttpRequest, pk: int, plot: str) -> HttpResponse:
        model = RegisteredModel.objects.filter(pk=pk).first()
        if model is None:
            raise Http404
        return drawn_png(lambda: monitoring_plot_render(user=request.user, model=model, plot=plot))

    def save_model(self, request: HttpRequest, obj: RegisteredModel, form: Any, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in INVENTORY_FIELDS}
        if changes:
            registered_model_inventory_update(actor=request.user, model=obj, changes=changes)


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "registered_model", "model_version", "progress", "attempts", "requested_by_username",
                    "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    search_fields = ["registered_model__name", "requested_by_username", "error"]
    fields = ["kind", "status", "progress", "registered_model", "model_version", "dataset_version", "params",
              "result", "error", "attempts", "max_attempts", "cancel_requested", "worker", "requested_by_username",
              "created_at", "started_at", "heartbeat_at", "finished_at"]
    readonly_fields = fields

    @admin.display(description="progress")
    def progress(self, obj: Job) -> str:
        return progress_bar(obj)


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    """Monitoring alerts as raised; acknowledged on the workspace's form, which calls the service."""

    list_display = ["id", "registered_model", "model_version", "metric", "value", "threshold", "light", "status",
                    "created_at", "acknowledged_by_username"]
    list_filter = ["status", "light", "registered_model"]
    search_fields = ["registered_model__name", "metric", "message"]
    fields = ["registered_model", "model_version", "run", "metric", "value", "threshold", "light", "window", "message",
              "status", "acknowledged_by_username", "acknowledged_at", "comment", "notified", "created_at"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("registered_model", "model_version")


def _metric(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    """A model version's full record, its evaluations with metrics and plots."""

    list_display = ["__str__", "status", "algorithm", "dataset_version", "test_auc", "short_sha", "created_at",
                    "created_by_username"]
    list_filter = ["status", "algorithm", "registered_model"]
    search_fields = ["registered_model__name", "artifact_sha256"]
    fields = ["registered_model", "version", "algorithm", "dataset_version", "dataset_sha256", "spec",
              "allowed_exceptions", "preprocessing", "environment", "artifact_path", "artifact_sha256",
              "artifact_size", "split_summary", "timings", "search_results", "training_job", "created_at",
              "created_by_username", "evaluation_summary", "shap_summary"]
    fields = ["workspace_link", "status", *fields]
    readonly_fields = fields

    def get_urls(self) -> list[Any]:
        return [*Workspace(self.admin_site).urls(), *super().get_urls()]

    @admin.display(description="decide")
    def workspace_link(self, obj: ModelVersion) -> str:
        return format_html('<a href="{}">Open the decision page of {}</a>',
                           reverse("admin:riskmodels_workspace_version", args=[obj.pk]), obj)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("registered_model").prefetch_related("evaluations",
                                                                                                  "explanations")

    @admin.display(description="SHA-256")
    def short_sha(self, obj: ModelVersion) -> str:
        return obj.artifact_sha256[:12] + "…"

    @admin.display(description="test AUC")
    def test_auc(self, obj: ModelVersion) -> str:
        evaluation = next((e for e in obj.evaluations.all() if e.scope == Evaluation.Scope.TEST_SPLIT), None)
        return _metric(evaluation.metrics.get("auc")) if evaluation else "pending"

    @admin.display(description="evaluations")
    def evaluation_summary(self, obj: ModelVersion) -> str:
        blocks = []
        keys = ["auc", "gini", "ks", "brier", "log_loss", "accuracy", "precision", "recall", "f1"]
        for evaluation in obj.evaluations.all():
            cells = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>",
                                     ((k, _metric(evaluation.metrics.get(k))) for k in keys))
            images = format_html_join(
                "", '<img src="{}" alt="{}" style="max-width:320px;margin:4px">',
                ((reverse("admin:riskmodels_evaluation_plot", args=[evaluation.pk, name]), name)
                 for name in evaluation.plots),
            )
            fairness = fairness_block(evaluation)
            blocks.append(format_html("<h4>{} on dataset version {} (threshold {})</h4><table>{}</table><div>{}</div>{}",
                                      evaluation.get_scope_display(), evaluation.dataset_version_id,
                                      evaluation.threshold, cells, images, fairness))
        return format_html_join("", "{}", ((b,) for b in blocks)) if blocks else "no evaluation yet"


    @admin.display(description="SHAP importance")
    def shap_summary(self, obj: ModelVersion) -> str:
        report = next((r for r in obj.explanations.all() if r.status == ExplanationReport.Status.OK), None)
        if report is None:
            failed = [r for r in obj.explanations.all() if r.status == ExplanationReport.Status.FAILED]
            return f"no passing SHAP report ({len(failed)} failed the additivity check)" if failed else "no SHAP report yet"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((i["rank"], i["feature"], _metric(i["mean_abs"]), _metric(i["mean"]))
                                 for i in report.importance[:15]))
        images = format_html_join(
            "", '<img src="{}" alt="{}" style="max-width:420px;margin:4px">',
            ((reverse("admin:riskmodels_explanationreport_plot", args=[report.pk, plot.slug]), plot.name)
             for plot in report.plot_files.all()),
        )
        space = report.fingerprint.get("output_space", "")
        return format_html(
            "<p>Report #{} on {} rows ({}), additivity error {}, values in {} space.</p>"
            "<table><thead><tr><th>rank</th><th>feature</th><th>mean |SHAP|</th><th>mean SHAP</th></tr></thead>"
            "<tbody>{}</tbody></table><div>{}</div>",
            report.pk, report.n_rows, report.scope,
            "—" if report.additivity_error is None else f"{report.additivity_error:.1e}", space, rows, images)


@admin.register(ExplanationReport)
class ExplanationReportAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "scope", "status", "n_rows", "additivity_error", "created_at"]
    list_filter = ["status", "scope"]
    fields = ["model_version", "dataset_version", "scope", "status", "message", "fingerprint", "selection",
              "importance", "additivity_error", "base_value", "n_rows", "values_path", "values_sha256", "job",
              "created_at"]
    readonly_fields = fields

    def get_urls(self) -> list[Any]:
        return [path("<int:pk>/plots/<str:name>.png", self.admin_site.admin_view(self.plot_view),
                     name="riskmodels_explanationreport_plot"), *super().get_urls()]

    def plot_view(self, request: HttpRequest, pk: int, name: str) -> FileResponse:
        if not self.has_view_permission(request):
            raise Http404
        return png_or_404({p.slug: p.path for p in ExplanationPlot.objects.filter(report_id=pk)}, name)


class ReasonTextForm(forms.ModelForm):
    class Meta:
        model = ReasonText
        fields = ["registered_model", "feature", "text"]


@admin.register(ReasonText)
class ReasonTextAdmin(EditedWithCapability, admin.ModelAdmin):
    """The reason-code catalogue: compliance officers edit it here; every change is audited."""

    form = ReasonTextForm
    list_display = ["registered_model", "feature", "text", "updated_at", "updated_by"]
    list_filter = ["registered_model"]
    search_fields = ["feature", "text"]

    edit_capability = Capability.REASON_TEXT_EDIT

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["registered_model", "feature"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: ReasonText, form: Any, change: bool) -> None:
        saved = reason_text_set(actor=request.user, registered_model=obj.registered_model, feature=obj.feature,
                                text=obj.text)
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: ReasonText) -> None:
        reason_text_delete(actor=request.user, reason=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for reason in queryset:
            reason_text_delete(actor=request.user, reason=reason)


@admin.register(ProtectedCharacteristic)
class ProtectedCharacteristicAdmin(EditedWithCapability, admin.ModelAdmin):
    """The catalogue uploads are checked against: compliance officers edit it here; every change is audited."""

    list_display = ["name", "name_words", "value_words", "active"]
    fields = ["name", "name_words", "value_words", "active"]

    edit_capability = Capability.PROTECTED_CATALOGUE_EDIT

    def save_model(self, request: HttpRequest, obj: ProtectedCharacteristic, form: Any, change: bool) -> None:
        saved = protected_characteristic_save(
            actor=request.user, name=obj.name, name_words=obj.name_words, value_words=obj.value_words,
            active=obj.active, characteristic=ProtectedCharacteristic.objects.get(pk=obj.pk) if change else None)
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: ProtectedCharacteristic) -> None:
        protected_characteristic_delete(actor=request.user, characteristic=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for characteristic in queryset:
            protected_characteristic_delete(actor=request.user, characteristic=characteristic)


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "scope", "auc", "ks", "created_at"]
    list_filter = ["scope"]
    fields = ["model_version", "dataset_version", "scope", "threshold", "metrics", "train_metrics", "degradation",
              "fairness_table", "fairness", "plots", "job", "created_at"]
    readonly_fields = fields

    @admin.display(description="fairness at the cutoff")
    def fairness_table(self, obj: Evaluation) -> str:
        return fairness_block(obj)

    @admin.display(description="AUC")
    def auc(self, obj: Evaluation) -> str:
        return _metric(obj.metrics.get("auc"))

    @admin.display(description="KS")
    def ks(self, obj: Evaluation) -> str:
        return _metric(obj.metrics.get("ks"))

    def get_urls(self) -> list[Any]:
        return [path("<int:pk>/plots/<str:name>.png", self.admin_site.admin_view(self.plot_view),
                     name="riskmodels_evaluation_plot"),
                path("<int:pk>/fairness/<str:column>.png", self.admin_site.admin_view(self.fairness_plot_view),
                     name="riskmodels_evaluation_fairness_plot"), *super().get_urls()]

    def fairness_plot_view(self, request: HttpRequest, pk: int, column: str) -> HttpResponse:
        return drawn_png(lambda: fairness_plot_render(evaluation=evaluation_get_for_user(user=request.user, id=pk),
                                                      column=column))

    def plot_view(self, request: HttpRequest, pk: int, name: str) -> FileResponse:
        if not self.has_view_permission(request):
            raise Http404
        evaluation = Evaluation.objects.filter(pk=pk).first()
        return png_or_404(evaluation.plots if evaluation else {}, name)
