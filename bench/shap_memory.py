"""Benchmark: peak memory of a SHAP report's service tasks, against the number of rows explained.

Run by hand:  .venv/bin/python bench/shap_memory.py [--rows 50000 200000] [--chunk 25000]

For each row count, in a fresh process: trains HistGradientBoosting through the service on
numeric synthetic data (test split 50%, so the report explains that many rows), then runs the
report's tasks one after another in this process (the coordinator, every chunk, the merge,
then the plots, as the workers would) and reports each task's peak resident set above the
resident set just before it (Linux: VmHWM, reset through /proc/self/clear_refs). A task whose
memory grew with the report would show it here.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    raise KeyError(key)


def measure(rows: int, chunk: int) -> dict[str, float]:
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.path.insert(0, str(ROOT))
    var = Path(tempfile.mkdtemp(prefix="bench-shap-memory-"))
    os.environ.update({"DEBUG": "1", "VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "governance.settings",
                       "EXPLAIN_CHUNK_ROWS": str(chunk), "EXPLAIN_DEFAULT_MAX_ROWS": str(rows),
                       "EXPLAIN_BUDGET_SECONDS": "100000"})
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from governance.accounts import team_get_or_create, user_upsert
    from governance.celery import app
    from riskmodels.jobs.kinds import chunk_execute, job_execute
    from riskmodels.models import ExplanationReport, JobChunk, ModelVersion
    from riskmodels.services.datasets import dataset_version_create
    from riskmodels.services.explanations import explanation_job_create, explanation_plots_render
    from riskmodels.services.registry import registered_model_create
    from riskmodels.services.training import training_job_create

    app.send_task = lambda *_, **__: None  # this process runs each task itself, in order
    sys.path.insert(0, str(ROOT / "bench"))
    from synthetic import make_numeric_data as make_data

    path = var / "bench.parquet"
    make_data(2 * rows, path)
    bench_team = team_get_or_create(name="bench").slug  # benchmark objects in their own team
    dev, _ = user_upsert(username="bench-dev", role="developer", teams=[bench_team])
    dataset, _ = dataset_version_create(actor=dev, name="bench", source=str(path), filename=path.name, target="default")
    model = registered_model_create(actor=dev, name="bench-model", owner_team="bench", purpose="benchmark")
    job = training_job_create(actor=dev, registered_model=model, dataset_version=dataset,
                              request={"algorithm": "gradient_boosting", "test_size": 0.5})
    job_execute(job_id=job.pk)
    version = ModelVersion.objects.get()
    report_job = explanation_job_create(actor=dev, model_version=version)

    peaks: dict[str, float] = {}

    def run(name: str, call) -> None:  # noqa: ANN001
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")
        before = _status("VmRSS")
        call()
        peaks[name] = max(peaks.get(name, 0), _status("VmHWM") - before)

    run("coordinator", lambda: job_execute(job_id=report_job.pk))
    for chunk_id in JobChunk.objects.filter(job=report_job).order_by("index").values_list("pk", flat=True):
        # The last chunk also merges: measured under "last chunk + merge".
        last = not JobChunk.objects.filter(job=report_job, status="queued").exclude(pk=chunk_id).exists()
        run("last chunk + merge" if last else "chunk", lambda c=chunk_id: chunk_execute(chunk_id=c))
    report = ExplanationReport.objects.get(job=report_job)
    assert report.status == "ok" and report.n_rows == rows, report.message
    run("plots", lambda: explanation_plots_render(report_id=report.pk))
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--chunk", type=int, default=25_000)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.chunk)))
        return
    results = {}
    for rows in args.rows:
        out = subprocess.run([sys.executable, __file__, "--one", str(rows), "--chunk", str(args.chunk)],
                             check=True, capture_output=True, text=True, cwd=ROOT).stdout
        results[rows] = json.loads(out.strip().splitlines()[-1])
    names = list(next(iter(results.values())))
    print(f"peak resident set above the task's start (MB), chunks of {args.chunk} rows")
    print("| task | " + " | ".join(f"{r:,} rows" for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{results[r][name]:.0f}" for r in results) + " |")


if __name__ == "__main__":
    main()
