"""SHAP explanations: global reports computed in parallel chunks, their plots, and local explanations.

- ``reports``: request a report (cost estimate, budget), plan it, explain its chunks, merge;
- ``plots``: the report's plots, a follow-up task;
- ``local``: explanations and reason codes for given applicants;
- ``cache``: the model, tree explainer and background kept per worker process.
"""

from riskmodels.services.explanations.local import explanation_local
from riskmodels.services.explanations.plots import explanation_plots_render
from riskmodels.services.explanations.reports import (
    explanation_chunk_work,
    explanation_job_create,
    explanation_merge,
    explanation_work,
)

__all__ = ["explanation_chunk_work", "explanation_job_create", "explanation_local", "explanation_merge",
           "explanation_plots_render", "explanation_work"]
