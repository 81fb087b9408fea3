"""Which section of a documentation pack answers which supervisory expectation: the mapping, as data.

Two frameworks are mapped: the US supervisory guidance on model risk management (SR 26-2, the
successor of SR 11-7) by its main topics, and the technical documentation the EU AI Act asks of
a high-risk AI system (Annex IV, points 1 to 9). Each item is a short topic title in our own
words, never the regulatory text: the pack says where the evidence is, the reader judges
whether it suffices. Evidence is a list of paths into the pack's JSON; an item with none of
them recorded says so plainly ("no evidence recorded"). Pure: no Django, so it is tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NO_EVIDENCE = "no evidence recorded"
FRAMEWORKS = {
    "SR 26-2": "US supervisory guidance on model risk management (successor of SR 11-7)",
    "EU AI Act Annex IV": "Technical documentation of a high-risk AI system",
}


@dataclass(frozen=True)
class Item:
    """One expectation: its framework, reference, topic title, the pack's sections and the evidence paths."""

    framework: str
    ref: str
    title: str
    sections: tuple[str, ...]
    evidence: tuple[tuple[str, str], ...]  # (what it is, dotted path into the pack's JSON)


SR = "SR 26-2"
AI = "EU AI Act Annex IV"

ITEMS: tuple[Item, ...] = (
    Item(SR, "development", "Model development, implementation and use", ("model", "method", "scoring"), (
        ("purpose and business use", "model.business_use"),
        ("training specification and pipeline", "method.pipeline"),
        ("artifact hash", "version.artifact.sha256"),
        ("scoring policy in force", "scoring.policy"),
    )),
    Item(SR, "conceptual_soundness", "Conceptual soundness", ("method", "explainability"), (
        ("algorithm and hyperparameters", "method.hyperparameters"),
        ("hyperparameter search results", "method.search_results"),
        ("global SHAP importance", "explainability.report.importance"),
    )),
    Item(SR, "data", "Data quality, relevance and lineage", ("data",), (
        ("dataset hash", "data.dataset.sha256"),
        ("schema and roles", "data.schema"),
        ("quality profile", "data.quality"),
        ("leakage screening", "data.leakage"),
    )),
    Item(SR, "testing", "Testing and outcomes analysis", ("performance", "fairness", "validation"), (
        ("test-split metrics with confidence intervals", "performance.evaluations"),
        ("validation battery", "validation.battery"),
        ("fairness test", "fairness"),
        ("performance on observed outcomes", "monitoring.performance_runs"),
    )),
    Item(SR, "ongoing_monitoring", "Ongoing monitoring", ("monitoring",), (
        ("frozen monitoring reference", "monitoring.reference"),
        ("stability runs", "monitoring.stability_runs"),
        ("performance runs", "monitoring.performance_runs"),
        ("alerts", "monitoring.alerts"),
        ("periodic reviews", "lifecycle.periodic_reviews"),
    )),
    Item(SR, "validation_independence", "Independent validation", ("validation", "lifecycle"), (
        ("validation conclusion by a validator", "validation.conclusion"),
        ("findings and their closure", "validation.findings"),
        ("separation of duties in the decision records", "lifecycle.decisions"),
    )),
    Item(SR, "governance", "Governance, policies, controls and model inventory", ("model", "lifecycle"), (
        ("inventory entry: tier, type, owner", "model.risk_tier"),
        ("review cadence", "model.review_cadence_months"),
        ("performance floors", "model.floors"),
        ("lifecycle decisions with actors and rationales", "lifecycle.decisions"),
    )),
    Item(SR, "documentation", "Documentation", ("model", "method", "data"), (
        ("this pack, generated from the records", "schema"),
        ("model description", "model.description"),
    )),
    Item(SR, "limitations", "Model limitations and third-party (vendor) components", ("model", "method"), (
        ("stated limitations", "model.limitations"),
        ("third-party libraries and their versions", "method.library_versions"),
    )),
    Item(AI, "1", "General description of the system", ("model", "version"), (
        ("intended purpose", "model.purpose"),
        ("business use", "model.business_use"),
        ("version and its status", "version.status"),
        ("software versions", "method.library_versions"),
    )),
    Item(AI, "2", "Development: methods, design, data, validation and testing", ("method", "data", "performance",
                                                                                 "validation"), (
        ("design: algorithm, pipeline, hyperparameters", "method.pipeline"),
        ("training data: hash, schema, quality", "data.dataset.sha256"),
        ("validation and testing metrics", "performance.evaluations"),
        ("validation battery", "validation.battery"),
    )),
    Item(AI, "3", "Monitoring, functioning and control (capabilities, limitations, human oversight)",
         ("model", "scoring", "explainability"), (
             ("limitations", "model.limitations"),
             ("decision policy", "scoring.policy"),
             ("reason-code catalogue", "explainability.reason_codes"),
             ("human overrides in the decision ledger", "scoring.ledger.overrides"),
         )),
    Item(AI, "4", "Appropriateness of the performance metrics", ("performance", "model"), (
        ("metrics with confidence intervals", "performance.evaluations"),
        ("performance floors", "model.floors"),
    )),
    Item(AI, "5", "Risk management system", ("validation", "model"), (
        ("risk tier", "model.risk_tier"),
        ("findings", "validation.findings"),
        ("validation battery", "validation.battery"),
    )),
    Item(AI, "6", "Changes through the lifecycle", ("lifecycle",), (
        ("lifecycle decisions", "lifecycle.decisions"),
        ("other versions of the model", "lifecycle.other_versions"),
    )),
    # Neither item is kept by this service: the pack says so rather than implying otherwise.
    Item(AI, "7", "Harmonised standards or other specifications applied", (), ()),
    Item(AI, "8", "Copy of the EU declaration of conformity", (), ()),
    Item(AI, "9", "Post-market monitoring plan and its results", ("monitoring",), (
        ("frozen monitoring reference", "monitoring.reference"),
        ("stability runs", "monitoring.stability_runs"),
        ("performance runs", "monitoring.performance_runs"),
        ("alerts", "monitoring.alerts"),
    )),
)


def _lookup(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _recorded(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {} and value is not False


def mapping_table(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one row per item: its reference, title, sections, the evidence recorded and what is not.

    ``status`` is ``"evidence recorded"``, or ``NO_EVIDENCE`` when none of the item's evidence is
    in ``document`` (the pack's JSON without its mapping).
    """
    rows = []
    for item in ITEMS:
        found = [label for label, path in item.evidence if _recorded(_lookup(document, path))]
        missing = [label for label, path in item.evidence if not _recorded(_lookup(document, path))]
        rows.append({"framework": item.framework, "ref": item.ref, "title": item.title,
                     "sections": list(item.sections), "evidence": found, "not_recorded": missing,
                     "status": "evidence recorded" if found else NO_EVIDENCE})
    return rows
