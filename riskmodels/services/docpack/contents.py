"""Gather a version's documentation pack from its records: one plain dict, the pack's JSON.

Everything comes from rows already recorded (the inventory entry, the version, its dataset
version, evaluations, SHAP report, validation, decisions, monitoring, the ledger); nothing is
recomputed and no clock is read, so the same records give the same dict, and the same JSON
bytes (``pack_json``). Every list has a fixed order (creation time, then id).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from django.db.models import Count, Max, Min, Q

from riskmodels.models import (
    Alert,
    CreditDecision,
    Decision,
    DecisionOverride,
    Evaluation,
    ExplainerRecord,
    ExplanationReport,
    Finding,
    ModelVersion,
    MonitoringReference,
    MonitoringRun,
    ReasonText,
    ValidationRun,
)
from riskmodels.services.docpack.mapping import mapping_table

SCHEMA = "riskgov.docpack/1"
METRICS = ("auc", "gini", "ks", "brier", "log_loss", "accuracy", "precision", "recall", "f1")


def _when(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value.isoformat()


def _model(version: ModelVersion) -> dict[str, Any]:
    model = version.registered_model
    return {
        "name": model.name, "purpose": model.purpose, "description": model.description,
        "business_use": model.business_use, "limitations": model.limitations, "risk_tier": model.risk_tier,
        "model_type": model.model_type, "owner": model.owner.username if model.owner_id else None,
        "owner_team": model.owner_team, "review_cadence_months": model.review_cadence_months,
        "next_review_date": _when(model.next_review_date), "floors": model.floors,
        "registered_at": _when(model.created_at),
    }


def _version(version: ModelVersion) -> dict[str, Any]:
    return {
        "id": version.pk, "version": version.version, "status": version.status,
        "status_changed_at": _when(version.status_changed_at), "algorithm": version.algorithm,
        "trained_at": _when(version.created_at), "trained_by": version.created_by_username,
        "training_job": version.training_job_id, "allowed_exceptions": version.allowed_exceptions,
        "artifact": {"sha256": version.artifact_sha256, "size": version.artifact_size},
    }


def _data(version: ModelVersion) -> dict[str, Any]:
    dataset = version.dataset_version
    profile = dataset.profile or {}
    columns = profile.get("columns", {})
    return {
        "dataset": {"name": dataset.dataset.name, "version": dataset.version, "id": dataset.pk,
                    "sha256": dataset.sha256, "n_rows": dataset.n_rows, "n_columns": dataset.n_columns,
                    "source_filename": dataset.source_filename, "source_format": dataset.source_format,
                    "registered_at": _when(dataset.created_at)},
        "sha256_at_training": version.dataset_sha256,
        "schema": dataset.schema,
        "roles": dataset.columns_by_role,
        "quality": {
            "duplicate_rows": profile.get("duplicate_rows"), "constant_columns": profile.get("constant_columns", []),
            "warnings": profile.get("warnings", []), "target": profile.get("target"),
            "protected_suspects": profile.get("protected_suspects", []),
            "columns": [{"name": name, "missing_fraction": c.get("missing_fraction"), "distinct": c.get("distinct"),
                         "univariate_auc": c.get("univariate_auc"), "outliers_iqr": c.get("outliers_iqr")}
                        for name, c in columns.items()],
        },
        # Screened at upload: an empty list of flags is a result, not an absence of one.
        "leakage": {"screened": True, "flags": profile["leakage"]} if "leakage" in profile else None,
        "split": version.split_summary,
    }


def _method(version: ModelVersion) -> dict[str, Any]:
    spec, preprocessing = version.spec, version.preprocessing
    return {
        "algorithm": version.algorithm, "target": spec.get("target"), "positive_class": spec.get("positive_class"),
        "features": spec.get("features", []), "categorical": spec.get("categorical", []),
        "numeric": preprocessing.get("numeric", []), "pipeline": preprocessing.get("pipeline"),
        "hyperparameters": spec.get("hyperparameters", {}), "search": spec.get("search"),
        "search_results": version.search_results, "seed": spec.get("seed"),
        "split": {"method": spec.get("split"), "test_size": spec.get("test_size"), "date_column": spec.get("date_column")},
        "library_versions": version.environment, "artifact_sha256": version.artifact_sha256,
    }


def _evaluation(evaluation: Evaluation) -> dict[str, Any]:
    metrics = evaluation.metrics
    bootstrap = metrics.get("bootstrap") or {}
    return {
        "id": evaluation.pk, "scope": evaluation.scope, "dataset_version": evaluation.dataset_version_id,
        "threshold": evaluation.threshold, "n": metrics.get("n"), "n_positive": metrics.get("n_positive"),
        "base_rate": metrics.get("base_rate"),
        "metrics": [{"name": name, "value": metrics.get(name),
                     "ci": bootstrap.get(name) if isinstance(bootstrap.get(name), dict) else None,
                     "train": (evaluation.train_metrics or {}).get(name)}
                    for name in METRICS if name in metrics],
        "ci_method": {k: bootstrap.get(k) for k in ("method", "level", "n_bootstrap", "seed")} if bootstrap else None,
        "confusion_matrix": metrics.get("confusion_matrix"), "hosmer_lemeshow": metrics.get("hosmer_lemeshow"),
        "calibration": (metrics.get("curves") or {}).get("calibration"), "deciles": metrics.get("deciles", []),
        "degradation": evaluation.degradation, "created_at": _when(evaluation.created_at),
    }


def _fingerprint_sha256(data: dict[str, Any]) -> str:
    # The naming of ExplainerRecord (riskmodels/services/scoring.py): SHA-256 of the canonical JSON.
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _explainability(version: ModelVersion, fingerprints: list[str]) -> dict[str, Any]:
    report = (ExplanationReport.objects.filter(model_version=version, status=ExplanationReport.Status.OK)
              .order_by("-created_at", "-id").first())
    records = ExplainerRecord.objects.filter(sha256__in=fingerprints).order_by("sha256")
    return {
        "report": None if report is None else {
            "id": report.pk, "scope": report.scope, "dataset_version": report.dataset_version_id,
            "n_rows": report.n_rows, "selection": report.selection, "base_value": report.base_value,
            "additivity_error": report.additivity_error, "values_sha256": report.values_sha256,
            "importance": report.importance, "fingerprint": report.fingerprint,
            "fingerprint_sha256": _fingerprint_sha256(report.fingerprint), "created_at": _when(report.created_at),
        },
        "explainer_records": [{"sha256": r.sha256, "data": r.data} for r in records],
        "reason_codes": [{"feature": r.feature, "text": r.text} for r in
                         ReasonText.objects.filter(registered_model=version.registered_model).order_by("feature")],
    }


def _fairness(evaluations: list[Evaluation]) -> list[dict[str, Any]]:
    return [{"evaluation": e.pk, "scope": e.scope, **e.fairness} for e in evaluations if e.fairness]


def _finding(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.pk, "title": finding.title, "description": finding.description, "category": finding.category,
        "severity": finding.severity, "status": finding.status, "raised_by": finding.raised_by_username,
        "test_name": finding.test_name, "owner": finding.owner.username if finding.owner_id else None,
        "due_date": _when(finding.due_date), "remediation": finding.remediation,
        "remediated_by": finding.remediated_by_username, "closing_evidence": finding.closing_evidence,
        "closed_by": finding.closed_by_username, "closed_at": _when(finding.closed_at),
        "dismissal_reason": finding.dismissal_reason, "created_at": _when(finding.created_at),
    }


def _decision(decision: Decision) -> dict[str, Any]:
    return {
        "id": decision.pk, "action": decision.action, "from_status": decision.from_status,
        "to_status": decision.to_status, "actor": decision.actor_username, "actor_roles": decision.actor_roles,
        "rationale": decision.rationale, "conclusion": decision.conclusion, "conditions": decision.conditions,
        "policy_exception": decision.policy_exception, "evidence": decision.evidence, "at": _when(decision.created_at),
    }


def _validation(version: ModelVersion, decisions: list[Decision]) -> dict[str, Any]:
    concluded = [d for d in decisions if d.action == Decision.Action.VALIDATE]
    battery = ValidationRun.objects.filter(model_version=version).order_by("-created_at", "-id").first()
    findings = Finding.objects.filter(model_version=version).select_related("owner").order_by("created_at", "id")
    return {
        "conclusion": None if not concluded else {
            "conclusion": concluded[-1].conclusion, "conditions": concluded[-1].conditions,
            "rationale": concluded[-1].rationale, "validator": concluded[-1].actor_username,
            "at": _when(concluded[-1].created_at)},
        "battery": None if battery is None else {
            "id": battery.pk, "outcome": battery.outcome, "n_rows": battery.n_rows, "evaluation": battery.evaluation_id,
            "created_at": _when(battery.created_at),
            "tests": [{"name": t.get("name"), "outcome": t.get("outcome"), "category": t.get("category"),
                       "message": t.get("message")} for t in battery.results]},
        "findings": [_finding(f) for f in findings],
    }


def _run(run: MonitoringRun) -> dict[str, Any]:
    metrics = (run.results or {}).get("metrics", {})
    return {
        "id": run.pk, "kind": run.kind, "window_start": _when(run.window_start), "window_end": _when(run.window_end),
        "dataset_version": run.dataset_version_id, "n_rows": run.n_rows, "light": run.light,
        "status": (run.results or {}).get("status"),
        "metrics": [{"name": name, "value": m.get("value"), "light": m.get("light"), "ci": m.get("ci")}
                    for name, m in sorted(metrics.items())],
        "thresholds": run.thresholds, "created_at": _when(run.created_at),
    }


def _monitoring(version: ModelVersion) -> dict[str, Any]:
    reference = MonitoringReference.objects.filter(model_version=version).first()
    runs = list(MonitoringRun.objects.filter(model_version=version).order_by("created_at", "id"))
    alerts = Alert.objects.filter(model_version=version).order_by("created_at", "id")
    return {
        "reference": None if reference is None else {
            "dataset_version": reference.dataset_version_id, "n_rows": reference.n_rows,
            "baseline": reference.baseline, "features": sorted(reference.feature_bins),
            "created_at": _when(reference.created_at)},
        "stability_runs": [_run(r) for r in runs if r.kind == MonitoringRun.Kind.STABILITY],
        "performance_runs": [_run(r) for r in runs if r.kind == MonitoringRun.Kind.PERFORMANCE],
        "alerts": [{"id": a.pk, "metric": a.metric, "value": a.value, "threshold": a.threshold, "light": a.light,
                    "message": a.message, "status": a.status, "run": a.run_id,
                    "acknowledged_by": a.acknowledged_by_username, "acknowledged_at": _when(a.acknowledged_at),
                    "comment": a.comment, "created_at": _when(a.created_at)} for a in alerts],
    }


def _scoring(version: ModelVersion) -> tuple[dict[str, Any], list[str]]:
    decisions = CreditDecision.objects.filter(model_version=version)
    volume = decisions.aggregate(total=Count("id"), decisive=Count("id", filter=Q(decisive=True)),
                                 first=Min("created_at"), last=Max("created_at"))
    by_outcome = dict(decisions.values_list("outcome").annotate(n=Count("id")).order_by("outcome"))
    fingerprints = sorted(decisions.values_list("fingerprint_id", flat=True).distinct())
    overrides = DecisionOverride.objects.filter(decision__model_version=version).count()
    model = version.registered_model
    ledger = None if not volume["total"] else {
        "decisions": volume["total"], "decisive": volume["decisive"], "by_outcome": by_outcome,
        "overrides": overrides, "first": _when(volume["first"]), "last": _when(volume["last"])}
    return {"policy": model.scoring_policy, "ledger_inputs": model.ledger_inputs, "ledger": ledger}, fingerprints


def pack_contents(version: ModelVersion) -> dict[str, Any]:
    """Return the documentation pack of ``version`` as a plain dict (the JSON), its mapping table included."""
    evaluations = list(Evaluation.objects.filter(model_version=version).order_by("created_at", "id"))
    decisions = list(Decision.objects.filter(model_version=version).order_by("created_at", "id"))
    scoring, fingerprints = _scoring(version)
    others = (ModelVersion.objects.filter(registered_model=version.registered_model).exclude(pk=version.pk)
              .order_by("version"))
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "model": _model(version),
        "version": _version(version),
        "data": _data(version),
        "method": _method(version),
        "performance": {"evaluations": [_evaluation(e) for e in evaluations]},
        "explainability": _explainability(version, fingerprints),
        "fairness": _fairness(evaluations),
        "validation": _validation(version, decisions),
        "lifecycle": {
            "decisions": [_decision(d) for d in decisions],
            "periodic_reviews": [{"conclusion": r.conclusion, "rationale": r.rationale, "reviewer": r.reviewer_username,
                                  "evaluation": r.evaluation_id, "due_date": _when(r.due_date),
                                  "next_review_date": _when(r.next_review_date), "at": _when(r.created_at)}
                                 for r in version.reviews.order_by("created_at", "id")],
            "other_versions": [{"id": v.pk, "version": v.version, "status": v.status, "algorithm": v.algorithm,
                                "trained_at": _when(v.created_at)} for v in others],
        },
        "monitoring": _monitoring(version),
        "scoring": scoring,
    }
    document["mapping"] = mapping_table(document)
    return document


def pack_json(document: dict[str, Any]) -> bytes:
    """Return the pack's JSON bytes: sorted keys, fixed separators, UTF-8, so equal dicts give equal bytes."""
    return (json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode()
