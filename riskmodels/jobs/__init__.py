"""The one job runner: every kind of background work is a Job row run through this package.

- ``state``: the state machine (claim by conditional UPDATE, lease and heartbeat, progress,
  cancel, finish, fail, reap);
- ``runner``: run a kind's work under a lease and end the job, or fan it out into chunks
  run by any worker and merged by the last one;
- ``dispatch``: the Celery task names, sent after commit;
- ``kinds``: the registry, one entry per job kind (imported by the tasks only).
"""

from riskmodels.jobs.runner import (
    ChunkWork,
    Failed,
    FanOut,
    Finished,
    Merge,
    Progress,
    Work,
    chunk_finished,
    chunk_run,
    fanned_out_job_fail,
    job_run,
)
from riskmodels.jobs.state import (
    JobCancelled,
    JobLost,
    LeaseKeeper,
    job_cancel,
    job_claim,
    job_dispatch,
    job_fail,
    job_finish,
    job_progress,
    jobs_reap,
)

__all__ = [
    "ChunkWork", "Failed", "FanOut", "Finished", "JobCancelled", "JobLost", "LeaseKeeper", "Merge", "Progress",
    "Work", "chunk_finished", "chunk_run", "fanned_out_job_fail", "job_cancel", "job_claim", "job_dispatch",
    "job_fail", "job_finish", "job_progress", "job_run", "jobs_reap",
]
