"""ML-domain tables: datasets, registered models and their versions, jobs and evaluations."""

from riskmodels.models.datasets import (
    DATASET_NAME_VALIDATOR,
    ColumnRole,
    Dataset,
    DatasetVersion,
    ProtectedCharacteristic,
)
from riskmodels.models.docpack import DocumentationPack
from riskmodels.models.explanations import ExplanationPlot, ExplanationReport, ReasonText
from riskmodels.models.jobs import Job, JobChunk, JobKind, JobStatus
from riskmodels.models.scoring import CreditDecision, DecisionOverride, ExplainerRecord, Outcome, OverrideReason
from riskmodels.models.monitoring import Alert, MonitoringReference, MonitoringRun, ObservedOutcome
from riskmodels.models.retention import LegalHold
from riskmodels.models.lifecycle import Decision, Finding, PeriodicReview, ValidationRun
from riskmodels.models.registry import (
    Evaluation,
    LedgerInputs,
    ModelType,
    ModelVersion,
    RegisteredModel,
    RiskTier,
    VersionStatus,
)

__all__ = [
    "Alert", "LegalHold", "MonitoringReference", "MonitoringRun", "ObservedOutcome",
    "CreditDecision", "DecisionOverride", "ExplainerRecord", "LedgerInputs", "Outcome", "OverrideReason",
    "DATASET_NAME_VALIDATOR", "ColumnRole", "Dataset", "DocumentationPack", "DatasetVersion", "Evaluation", "ExplanationPlot",
    "ExplanationReport", "Job", "JobChunk", "JobKind", "ReasonText", "Decision", "Finding", "PeriodicReview",
    "JobStatus", "ModelType", "ProtectedCharacteristic", "ModelVersion", "RegisteredModel", "RiskTier", "ValidationRun", "VersionStatus",
]
