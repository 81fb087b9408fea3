"""Local explanations: contributions, output and reason codes for given applicants, audited."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction

from governance.audit import audit_record
from governance.exceptions import ValidationFailed
from governance.policy import Capability, require
from riskmodels.ml.explain import ExplainOptions, ExplanationError, explain_local
from riskmodels.ml.explain_plots import render_waterfall
from riskmodels.ml.pipelines import TrainingSpec
from riskmodels.ml.scoring import ScoringPolicy, in_log_odds, material_reasons
from riskmodels.models import DatasetVersion, ModelVersion, ReasonText
from riskmodels.services.explanations.cache import explainer_for, training_background
from riskmodels.services.explanations.budget import request_budget_check
from riskmodels.storage import dataset_rows


def _posted_rows(rows: Any, spec: TrainingSpec) -> pd.DataFrame:
    """Check posted feature values (one object per applicant) against the spec; return them as a frame."""
    if not isinstance(rows, list) or not rows:
        raise ValidationFailed("rows must be a non-empty list of objects (one per applicant)", code="empty_rows",
                               details={"field": "rows"})
    cap = settings.EXPLAIN_LOCAL_MAX_ROWS
    if len(rows) > cap:
        raise ValidationFailed(f"{len(rows)} rows requested; at most {cap} per request (EXPLAIN_LOCAL_MAX_ROWS)",
                               code="over_row_cap", details={"field": "rows"})
    categorical = set(spec.categorical)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValidationFailed(f"rows[{i}] must be an object of feature values", code="invalid_row")
        missing = [f for f in spec.features if f not in row]
        if missing:
            raise ValidationFailed(f"rows[{i}] lacks features the model needs: {', '.join(missing)}",
                                   code="missing_feature", details={"row": i, "missing": missing})
        for feature in spec.features:
            value = row[feature]
            if value is None:
                continue
            if feature in categorical and not isinstance(value, str | bool):
                raise ValidationFailed(f"rows[{i}].{feature} must be a string category; got {value!r}",
                                       code="wrong_type", details={"row": i, "feature": feature})
            if feature not in categorical and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValidationFailed(f"rows[{i}].{feature} must be a number; got {value!r}", code="wrong_type",
                                       details={"row": i, "feature": feature})
    return pd.DataFrame([{f: row[f] for f in spec.features} for row in rows])


def _stored_rows(source: DatasetVersion, row_ids: Any, spec: TrainingSpec) -> pd.DataFrame:
    """Check row numbers of a dataset version and read those rows (in the order given)."""
    if not isinstance(row_ids, list) or not row_ids:
        raise ValidationFailed("row_ids must be a non-empty list of row numbers", code="empty_rows")
    if len(row_ids) > settings.EXPLAIN_LOCAL_MAX_ROWS:
        raise ValidationFailed(f"{len(row_ids)} rows requested; at most {settings.EXPLAIN_LOCAL_MAX_ROWS} per "
                               "request (EXPLAIN_LOCAL_MAX_ROWS)", code="over_row_cap")
    bad = [r for r in row_ids if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < source.n_rows]
    if bad:
        raise ValidationFailed(f"row ids out of range 0..{source.n_rows - 1}: {bad[:5]}", code="invalid_row_ids")
    missing = [f for f in spec.features if f not in {c["name"] for c in source.schema}]
    if missing:
        raise ValidationFailed(f"dataset version {source.pk} lacks features: {', '.join(missing)}",
                               code="incompatible_dataset")
    order = np.asarray(row_ids, dtype=np.int64)
    return dataset_rows(source, np.unique(order), list(spec.features)).loc[order]


def _materiality(version: ModelVersion) -> ScoringPolicy:
    """Return the model's materiality settings (its scoring policy's, else the defaults)."""
    configured = version.registered_model.scoring_policy or {}
    keys = ("materiality_share", "materiality_min_log_odds", "max_reasons")
    # The cutoff plays no part in which features are material; any valid one will do.
    return ScoringPolicy(cutoff=0.5, **{k: configured[k] for k in keys if k in configured})


def explanation_local(*, actor: Any, model_version: ModelVersion, rows: list[dict[str, Any]] | None = None,
                      dataset_version: DatasetVersion | None = None, row_ids: list[int] | None = None,
                      with_plots: bool = False) -> dict[str, Any]:
    """Explain given applicants: contributions, base value, output and up to four reason codes each.

    Rows come either as feature values (``rows``) or as row numbers of a dataset version.
    Protected attributes never appear among the reasons. Each explanation is audited:
    reason codes may be sent to an applicant, so what was said must be traceable.
    """
    require(actor, Capability.MODEL_EXPLAIN)
    spec = TrainingSpec.from_dict(model_version.spec)
    if (rows is None) == (row_ids is None):
        raise ValidationFailed("give either rows (feature values) or row_ids (with dataset_version)", code="invalid")
    if row_ids is not None:
        frame = _stored_rows(dataset_version or model_version.dataset_version, row_ids, spec)
    else:
        frame = _posted_rows(rows, spec)
    request_budget_check(model_version, spec, len(frame))
    options = ExplainOptions()
    explainer = explainer_for(model_version, spec, options, lambda: training_background(model_version, options))
    protected = {c["name"] for c in model_version.dataset_version.schema if c["role"] == "protected"}
    catalogue = dict(ReasonText.objects.filter(registered_model=model_version.registered_model)
                     .values_list("feature", "text"))
    try:
        report = explain_local(explainer, frame, protected=protected, catalogue=catalogue)
    except ExplanationError as exc:
        raise ValidationFailed(str(exc), code="unexplainable") from None
    body = report.to_dict()
    materiality = _materiality(model_version)
    for item, explanation in zip(body["explanations"], report.explanations, strict=True):
        # One language with scoring: the PD, contributions in log-odds whatever the algorithm,
        # and reasons by the same materiality rule (noise is never a reason).
        item.update(in_log_odds(explanation))
        reasons, _ = material_reasons(item["contributions_log_odds"], protected=protected, catalogue=catalogue,
                                      policy=materiality)
        item["reasons"] = [r.to_dict() for r in reasons]
    if with_plots:
        for item, explanation in zip(body["explanations"], report.explanations, strict=True):
            item["waterfall_png_base64"] = base64.b64encode(render_waterfall(explanation)).decode()
    with transaction.atomic():
        audit_record(actor=actor, action="local_explanation.produced", target=model_version,
                     after={"rows": len(frame), "source": "row_ids" if row_ids is not None else "posted",
                            "row_ids": [int(r) for r in row_ids] if row_ids is not None else None,
                            "status": report.status,
                            "reasons": [[r["feature"] for r in e["reasons"]] for e in body["explanations"]]})
    return body
