"""A SHAP report's plots: derived views rendered by a follow-up task, off the report's path."""

from __future__ import annotations

import numpy as np
from django.core.files.storage import default_storage
from django.db import transaction

from governance.audit import audit_record
from riskmodels.jobs.state import WORKER_LABEL
from riskmodels.ml.explain import FeatureImportance, GlobalReport
from riskmodels.ml.explain_plots import render_report_plots, thinned_rows
from riskmodels.models import ExplanationPlot, ExplanationReport
from riskmodels.services.explanations.reports import report_prefix
from riskmodels.storage import dataset_rows, delete_quietly, save_bytes, verified_in_background

# Rows a report's plots draw (evenly spaced when there are more): more points only overplot,
# and the plots task would otherwise hold the whole report and its rows' features.
PLOT_MAX_ROWS = 20_000


def explanation_plots_render(*, report_id: int) -> None:
    """Render a passing report's plots from its stored values (a second delivery is a no-op)."""
    report = ExplanationReport.objects.select_related("model_version__registered_model", "job").get(pk=report_id)
    if report.status != ExplanationReport.Status.OK or ExplanationPlot.objects.filter(report=report).exists():
        return
    # An evenly spaced sample of rows, read a row group at a time while the whole file's hash
    # is checked beside it; the bar plot uses the whole report's ranking.
    keep = thinned_rows(report.n_rows, PLOT_MAX_ROWS).astype(np.int64)
    with verified_in_background(report.values_path, report.values_sha256), \
            default_storage.open(report.values_path, "rb") as handle:
        stored = GlobalReport.from_parquet(handle, rows=keep)
    rows = np.asarray(stored.row_ids, dtype=np.int64)
    ranking = [FeatureImportance(i["feature"], i["mean_abs"], i["mean"], i["rank"]) for i in report.importance]
    feature_values = dataset_rows(report.dataset_version, np.sort(rows), list(stored.features)).loc[rows]
    paths: dict[str, str] = {}
    try:
        for name, png in render_report_plots(stored, feature_values, dependence_features=[r.feature for r in ranking[:3]],
                                             ranking=ranking, total_rows=report.n_rows).items():
            paths[name] = save_bytes(f"{report_prefix(report.job)}/{name.replace(':', '-')}.png", png)
        with transaction.atomic():
            ExplanationPlot.objects.bulk_create([ExplanationPlot(report=report, name=n, path=p) for n, p in paths.items()])
            audit_record(actor=None, actor_label=WORKER_LABEL, action="explanation_report.plots_rendered",
                         target=report, after={"plots": sorted(paths)})
    except Exception:
        # A concurrent duplicate won, or rendering failed: leave no orphan files behind.
        delete_quietly(list(paths.values()))
        raise
