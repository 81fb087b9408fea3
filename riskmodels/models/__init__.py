"""ML-domain tables: datasets, registered models and their versions, jobs and evaluations."""

from riskmodels.models.datasets import DATASET_NAME_VALIDATOR, ColumnRole, Dataset, DatasetVersion
from riskmodels.models.explanations import ExplanationPlot, ExplanationReport, ReasonText
from riskmodels.models.jobs import Job, JobChunk, JobKind, JobStatus
from riskmodels.models.registry import Evaluation, ModelVersion, RegisteredModel

__all__ = [
    "DATASET_NAME_VALIDATOR", "ColumnRole", "Dataset", "DatasetVersion", "Evaluation", "ExplanationPlot",
    "ExplanationReport", "Job", "JobChunk", "JobKind", "ReasonText",
    "JobStatus", "ModelVersion", "RegisteredModel",
]
