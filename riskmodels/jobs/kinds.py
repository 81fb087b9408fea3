"""The registry of job kinds: what runs a job of each kind, and its chunks where it has them.

The one place a new kind of background work is added: write its work (and chunk work and
merge, if it fans out) in its service, and give it an entry here. The Celery tasks look
kinds up here; services never import this module (it imports them), except the demo's
(riskmodels/services/demo.py), which runs its jobs in-process before the worker starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from riskmodels.jobs.runner import ChunkWork, Merge, Work, chunk_run, job_run
from riskmodels.models import Job, JobChunk, JobKind
from riskmodels.services.batch_scoring import batch_scoring_chunk_work, batch_scoring_merge, batch_scoring_work
from riskmodels.services.docpack import documentation_pack_work
from riskmodels.services.evaluation import evaluation_work
from riskmodels.services.explanations import explanation_chunk_work, explanation_merge, explanation_work
from riskmodels.services.performance import performance_work
from riskmodels.services.reproduce import reproduction_work
from riskmodels.services.monitoring_reference import monitoring_reference_work
from riskmodels.services.stability import stability_work
from riskmodels.services.training import training_work
from riskmodels.services.validation import validation_work


@dataclass(frozen=True)
class Kind:
    """How a job of one kind runs: its work, and for work that fans out, its chunks' work and merge."""

    work: Work
    chunk_work: ChunkWork | None = None
    merge: Merge | None = None


KINDS: dict[JobKind, Kind] = {
    JobKind.TRAIN: Kind(work=training_work),
    JobKind.EVALUATE: Kind(work=evaluation_work),
    JobKind.REPRODUCE: Kind(work=reproduction_work),
    JobKind.EXPLAIN: Kind(work=explanation_work, chunk_work=explanation_chunk_work, merge=explanation_merge),
    JobKind.VALIDATE: Kind(work=validation_work),
    JobKind.BATCH_SCORE: Kind(work=batch_scoring_work, chunk_work=batch_scoring_chunk_work, merge=batch_scoring_merge),
    JobKind.PERFORMANCE: Kind(work=performance_work),
    JobKind.MONITORING_REFERENCE: Kind(work=monitoring_reference_work),
    JobKind.STABILITY: Kind(work=stability_work),
    JobKind.DOCUMENTATION_PACK: Kind(work=documentation_pack_work),
}


def job_execute(*, job_id: int) -> None:
    """Run a queued job of any kind in this worker (a duplicate delivery is a no-op)."""
    kind = Job.objects.filter(pk=job_id).values_list("kind", flat=True).first()
    if kind is None:
        return
    job_run(job_id=job_id, work=KINDS[JobKind(kind)].work)


def chunk_execute(*, chunk_id: int) -> None:
    """Run one chunk of a fanned-out job of any kind (a duplicate delivery is a no-op)."""
    kind = JobChunk.objects.filter(pk=chunk_id).values_list("job__kind", flat=True).first()
    if kind is None:
        return
    entry = KINDS[JobKind(kind)]
    if entry.chunk_work is None or entry.merge is None:
        raise ValueError(f"{kind} jobs have no chunks; chunk {chunk_id} cannot be run")
    chunk_run(chunk_id=chunk_id, work=entry.chunk_work, merge=entry.merge)
