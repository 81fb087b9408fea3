"""Benchmark: stability runs (PSI of the score, CSI of every feature) by a real Celery worker, against a
bare NumPy reference (``np.searchsorted`` + ``np.bincount`` on in-memory arrays, then the PSI formula)
on the same data, in the same run. Issue 16's target: <= 1.5x, and worker memory independent of the rows.

Run by hand (not a test)::

    .venv/bin/python bench/monitoring.py --rows 100000 --threads 1 --profile   # about 40 s
    .venv/bin/python bench/monitoring.py --rows 1000000 --threads 1             # about 3.5 minutes

``--threads`` (default 2, as bench/scoring.py gives one worker all the cores) sets the worker's
WORKER_THREADS and this process's OpenMP threads alike. On this shared 2-core VM, with other work on
the second core, HGB ``predict_proba`` with 2 OpenMP threads took 1.7-3.0 s for 5 x 20,000 rows
against 0.17 s with one thread (0.25 s with 2 threads when the other core was idle): each of the
per-tree parallel regions waits for a preempted thread. Both sides pay it, but not equally, so
compare with ``--threads 1`` unless the machine is quiet.

Set-up, as bench/scoring.py ``--batch`` (its ``Workers`` and ``_status_mb`` helpers are imported
from it): a temporary ``VAR_DIR``, ``DEBUG=0``, the filesystem broker, a fresh PostgreSQL database
(``createdb -h 127.0.0.1 -U postgres bench_monitoring_<pid>``, dropped at the end). HGB with the
service defaults is trained through the service (``job_execute`` in this process) on 40,000 rows of
bench/synthetic.py's data with x19 replaced by a text column ``region`` (four levels): 20 features,
19 numeric and one categorical. The version is made champion by setting its status directly (as
bench/scoring.py does), its monitoring reference is computed by the service's own
``monitoring_reference`` job (``job_execute``, in this process, as promotion would queue it), and a
compliance officer sets the scoring policy.

Data: one dataset version of ``--rows`` rows (another seed, shifted so the indexes are not all zero:
x0 + 0.1). The ledger: a ``batch_score`` job of that dataset version, run by the same worker (so the
ledger rows are written by the service itself, with their stored features, COPY on PostgreSQL).

Measured, with one worker process (concurrency 1, 2 OpenMP threads; a stability run is one task,
``riskmodels.run_job``, never fanned out into chunks), after a warm-up stability run:
(a) ``stability_run_request(dataset_version=...)`` → the ``monitoring_run.finished`` audit event
    (reads the Parquet a chunk of MONITORING_CHUNK_ROWS at a time, scores each chunk, bins 20 features);
(b) ``stability_run_request(since, until)`` over the window holding the batch job's decisions →
    the same event (reads the ledger's pd and features JSON through a server-side cursor).
Bare reference, in this process, on arrays already in memory: the features from ``dataset_frame``;
for (a) the PDs of ``pipeline.predict_proba`` (timed apart: "bare + predict_proba"), for (b) the
``pd`` column of the ledger rows (loaded outside the clock). Numbers: ``np.searchsorted(edges, x,
side="left")`` (right-closed bins) + ``np.bincount`` with NaN as its own bin; the category:
``pd.factorize`` and a code → bin table; then shares floored at 1e-4 and sum((a - e) ln(a / e)).
Correctness: every metric of the stored MonitoringRun against the bare value (max |difference|,
must be <= 1e-12), and n_rows.
Memory: the worker's pool process VmHWM reset through /proc/<pid>/clear_refs before each run; the
growth is VmHWM minus VmRSS at the reset.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # "import shap" must find the library
sys.path.insert(0, str(ROOT))

TRAIN_ROWS = 40_000
WARMUP_ROWS = 5_000
TOLERANCE = 1e-12


def _helpers():  # noqa: ANN202
    sys.path.insert(0, str(HERE))
    try:
        import scoring as bench_scoring
    finally:
        sys.path[:] = [p for p in sys.path if p != str(HERE)]
    return bench_scoring


def bare_metrics(reference, frame, pds):  # noqa: ANN001, ANN201
    """PSI / CSI from in-memory arrays: searchsorted + bincount (numbers), factorize (the category)."""
    import numpy as np
    import pandas as pd

    def index(expected, counts):  # noqa: ANN001, ANN202
        e = np.maximum(np.asarray(expected, dtype=np.float64), 1e-4)
        a = np.maximum(counts / counts.sum(), 1e-4)
        return float(np.sum((a - e) * np.log(a / e)))

    def numeric(bins, x):  # noqa: ANN001, ANN202
        edges = np.asarray(bins["edges"], dtype=np.float64)
        missing = np.isnan(x)
        counts = np.bincount(np.searchsorted(edges, x[~missing], side="left"), minlength=len(edges) + 1)
        return index(bins["shares"], np.append(counts, missing.sum()))

    out = {"psi:score": numeric(reference.score_bins, pds)}
    for feature, bins in reference.feature_bins.items():
        values = frame[feature].to_numpy()
        if bins["kind"] == "numeric":
            out[f"csi:{feature}"] = numeric(bins, values.astype(np.float64))
        else:
            codes, uniques = pd.factorize(values)  # missing -> -1
            position = {c: i for i, c in enumerate(bins["categories"])}
            other, missing = len(bins["categories"]), len(bins["categories"]) + 1
            table = np.array([position.get(str(u), other) for u in uniques] + [missing], dtype=np.int64)
            counts = np.bincount(table[codes], minlength=len(bins["categories"]) + 2)
            out[f"csi:{feature}"] = index(bins["shares"], counts)
    return out


def main() -> None:  # noqa: C901, PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=None, help="MONITORING_CHUNK_ROWS (service default if unset)")
    parser.add_argument("--threads", type=int, default=2,
                        help="OpenMP threads of the worker (WORKER_THREADS) and of the bare side (threadpool_limits)")
    parser.add_argument("--profile", action="store_true", help="cProfile stability_work in this process at the end")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    args = parser.parse_args()
    bench_scoring = _helpers()

    load_at_start = os.getloadavg()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    var = tmp / "var"
    var.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "STORAGE_BACKEND",
                                                            "SECRET_KEY", "DEBUG")}
    env.update({"VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "governance.settings", "DEBUG": "0",
                "SECRET_KEY": "bench-monitoring-" + os.urandom(24).hex(), "SCORING_BATCH_CHUNK_ROWS": "50000",
                "EXPLAIN_PARALLELISM": "1", "EXPLAIN_BUDGET_SECONDS": "1000000", "ARROW_DEFAULT_MEMORY_POOL": "system"})
    if args.chunk:
        env["MONITORING_CHUNK_ROWS"] = str(args.chunk)
    database = f"bench_monitoring_{os.getpid()}"
    subprocess.run(["createdb", "-h", args.pg_host, "-p", str(args.pg_port), "-U", "postgres", database], check=True)
    env["DATABASE_URL"] = f"postgres://postgres@{args.pg_host}:{args.pg_port}/{database}"
    os.environ.update(env)
    for key in ("CELERY_BROKER_URL", "STORAGE_BACKEND"):
        os.environ.pop(key, None)
    pool = None
    results = []
    try:
        import django

        django.setup()
        import numpy as np
        import pandas as pd
        from django.conf import settings
        from django.core.files.storage import default_storage
        from django.core.management import call_command
        from django.db import transaction
        from threadpoolctl import threadpool_info, threadpool_limits

        call_command("migrate", verbosity=0)
        from governance.accounts import team_get_or_create, user_upsert
        from governance.models import AuditEvent
        from riskmodels.jobs.kinds import job_execute
        from riskmodels.ml.persistence import load_artifact
        from riskmodels.ml.pipelines import TrainingSpec, prepare_features
        from riskmodels.models import CreditDecision, Job, JobStatus, MonitoringReference, MonitoringRun
        from riskmodels.services.batch_scoring import batch_scoring_job_create
        from riskmodels.services.monitoring_reference import monitoring_reference_queue
        from riskmodels.services.reviews import registered_model_inventory_update
        from riskmodels.services.stability import stability_run_request
        from riskmodels.storage import dataset_frame

        bench_team = team_get_or_create(name="bench").slug  # benchmark objects in their own team
        dev, _ = user_upsert(username="bench-dev", role="developer", teams=[bench_team])
        officer, _ = user_upsert(username="bench-officer", role="compliance_officer", teams=[bench_team])
        underwriter, _ = user_upsert(username="bench-underwriter", role="underwriter", teams=[bench_team])

        started = time.perf_counter()
        training = bench_scoring.register_synthetic(dev, tmp, "train", TRAIN_ROWS, seed=3, drop=("x19",))
        model, version = bench_scoring.train_champion(dev, training, "bench-monitoring")
        with transaction.atomic():  # as promotion calls it, inside its transaction
            ref_job = monitoring_reference_queue(actor=officer, version=version)
        job_execute(job_id=ref_job.pk)
        reference = MonitoringReference.objects.get(model_version=version)
        model = registered_model_inventory_update(actor=officer, model=model,
                                                  changes={"scoring_policy": {"cutoff": 0.5}})
        spec = TrainingSpec.from_dict(version.spec)
        pipeline = load_artifact(default_storage.open(version.artifact_path).read(),
                                 expected_sha256=version.artifact_sha256)
        dataset = bench_scoring.register_synthetic(dev, tmp, f"monitor-{args.rows}", args.rows, seed=100,
                                                   drop=("x19",), shift=0.1)
        warmup = bench_scoring.register_synthetic(dev, tmp, "warm-up", WARMUP_ROWS, seed=99, drop=("x19",))
        print(f"set-up {time.perf_counter() - started:.0f} s: PostgreSQL, HGB trained on {TRAIN_ROWS:,} rows; "
              f"dataset version of {args.rows:,} rows x {len(spec.features)} features ({len(spec.categorical)} "
              f"categorical); reference of {reference.n_rows:,} test-split rows; MONITORING_CHUNK_ROWS "
              f"{settings.MONITORING_CHUNK_ROWS:,}; load average {load_at_start[0]:.2f} {load_at_start[1]:.2f} "
              f"{load_at_start[2]:.2f}", flush=True)

        pool = bench_scoring.Workers(1, args.threads, tmp, dict(os.environ))
        pool.wait_ready()

        def wait(job, action: str) -> float:  # noqa: ANN001
            while True:
                status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).get()
                if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
                    break
                time.sleep(0.25)
            assert status == JobStatus.SUCCEEDED, Job.objects.get(pk=job.pk).error
            return AuditEvent.objects.get(action=action, target_id=str(
                MonitoringRun.objects.get(job=job).pk if action == "monitoring_run.finished" else job.pk)
            ).created_at.timestamp()

        # The ledger: a batch scoring job of the dataset version, by the same worker.
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        t0 = time.time()
        batch = batch_scoring_job_create(actor=underwriter, model=model, dataset_version=dataset)
        wait(batch, "batch_scoring.finished")
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        ledger_rows = CreditDecision.objects.filter(model_version=version, decisive=True, created_at__gte=since,
                                                    created_at__lt=until).count()
        print(f"ledger: batch scoring job of {args.rows:,} rows by the worker in {time.time() - t0:.1f} s; "
              f"{ledger_rows:,} decisive decisions in the window", flush=True)

        # Warm-up: imports, pipeline cache, connection.
        wait(stability_run_request(actor=dev, model=model, dataset_version=warmup), "monitoring_run.finished")

        # Bare inputs, in memory, outside the clock.
        frame = dataset_frame(dataset)
        prepared = prepare_features(frame[list(spec.features)], spec)
        positive = list(pipeline.classes_).index(1)
        ledger_pd = np.asarray(CreditDecision.objects.filter(job=batch).order_by("row").values_list("pd", flat=True),
                               dtype=np.float64)
        pipeline.predict_proba(prepared.head(1000))
        limits = threadpool_limits(limits=args.threads)  # this process from here on, as the worker
        openmp = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "openmp"]

        def measure(label: str, create, pds_for_bare) -> dict:  # noqa: ANN001
            t0 = time.perf_counter()
            pds = pds_for_bare() if pds_for_bare is not None else ledger_pd
            t1 = time.perf_counter()
            bare = bare_metrics(reference, frame, pds)
            t2 = time.perf_counter()
            base = pool.reset_peaks()
            load = os.getloadavg()[0]
            started = time.time()
            job = create()
            finished = wait(job, "monitoring_run.finished")
            peak, growth = pool.peaks(base)[0]
            run = MonitoringRun.objects.get(job=job)
            job = Job.objects.get(pk=job.pk)
            queued = job.started_at.timestamp() - started  # creation -> a worker claimed it
            diff = max(abs(run.results["metrics"][k]["value"] - v) for k, v in bare.items())
            missing = set(bare) ^ set(run.results["metrics"])
            row = {"path": label, "bare": t2 - t1, "predict": t1 - t0 if pds_for_bare else None,
                   "service": finished - started, "peak": peak, "growth": growth, "diff": diff, "n": run.n_rows,
                   "missing": missing, "load": load, "queued": queued, "light": run.light, "psi": bare["psi:score"]}
            print(f"  {label}: bare {row['bare']:.3f} s" + (f" (+ predict_proba {row['predict']:.2f} s)" if
                  pds_for_bare else "") + f"  service {row['service']:.2f} s  worker +{growth:.0f} MB  "
                  f"max |diff| {diff:.1e}  n {run.n_rows:,}  (claimed after {queued:.2f} s; load {load:.2f})", flush=True)
            return row

        for _ in range(args.repeats):
            results.append(measure(
                "(a) dataset version", lambda: stability_run_request(actor=dev, model=model, dataset_version=dataset),
                lambda: pipeline.predict_proba(prepared)[:, positive]))
            results.append(measure(
                "(b) ledger window", lambda: stability_run_request(actor=dev, model=model, since=since, until=until),
                None))
        pool.stop()
        pool = None

        # The same runs in this process, through the job runner (job_execute: claim, work, write, audit), no
        # Celery: whether the worker adds time. Same threads (2 OpenMP).
        in_process = {}
        for label, kwargs in (("(a) dataset version", {"dataset_version": dataset}),
                              ("(b) ledger window", {"since": since, "until": until})):
            job = stability_run_request(actor=dev, model=model, **kwargs)
            t0 = time.time()
            job_execute(job_id=job.pk)
            finished = AuditEvent.objects.get(action="monitoring_run.finished",
                                              target_id=str(MonitoringRun.objects.get(job=job).pk))
            in_process[label] = finished.created_at.timestamp() - t0
            print(f"  {label}: in this process (job_execute) {in_process[label]:.2f} s", flush=True)

        profile_text = ""
        if args.profile:
            import cProfile
            import io
            import pstats

            from riskmodels.services.stability import stability_work

            for label, kwargs in (("dataset version", {"dataset_version": dataset}),
                                  ("ledger window", {"since": since, "until": until})):
                job = stability_run_request(actor=dev, model=model, **kwargs)
                job = Job.objects.select_related("model_version__registered_model", "dataset_version").get(pk=job.pk)
                profiler = cProfile.Profile()
                t0 = time.perf_counter()
                profiler.enable()
                stability_work(job, lambda *a, **k: None, [])
                profiler.disable()
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                stats.sort_stats("tottime").print_stats(15)
                stats.sort_stats("cumulative").print_stats(25)
                profile_text += (f"\ncProfile of stability_work ({label}, {args.rows:,} rows) in this process: "
                                 f"{time.perf_counter() - t0:.2f} s under the profiler\n" + out.getvalue())
        load_at_end = os.getloadavg()
        limits.restore_original_limits()
    finally:
        if pool is not None:
            pool.stop()
        bench_scoring.close_connections()
        subprocess.run(["dropdb", "--force", "-h", args.pg_host, "-p", str(args.pg_port), "-U", "postgres", database],
                       check=False)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nload average at the start {load_at_start[0]:.2f} {load_at_start[1]:.2f} {load_at_start[2]:.2f}, at the "
          f"end {load_at_end[0]:.2f} {load_at_end[1]:.2f} {load_at_end[2]:.2f}; {os.cpu_count()} CPUs; bare in this "
          f"process with {openmp or '?'} OpenMP thread(s); 1 worker, concurrency 1, {args.threads} thread(s)\n")
    print("| path | rows | bare (binning + PSI) | bare + predict_proba | service | service / bare | "
          "service / (bare + predict) | worker peak RSS MB (growth) | max abs diff | n_rows | PSI score |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in results:
        with_pred = r["bare"] + r["predict"] if r["predict"] is not None else None
        ratio_pred = f"{r['service'] / with_pred:.2f}x" if with_pred else "n/a"
        print(f"| {r['path']} | {args.rows:,} | {r['bare']:.3f} s | "
              f"{f'{with_pred:.2f} s' if with_pred else 'n/a'} | {r['service']:.2f} s | {r['service'] / r['bare']:.1f}x | "
              f"{ratio_pred} | {r['peak']:.0f} (+{r['growth']:.0f}) | "
              f"{r['diff']:.1e}{' OK' if r['diff'] <= TOLERANCE and not r['missing'] else ' WRONG'} | "
              f"{r['n']:,}{' OK' if r['n'] == args.rows else ' WRONG'} | {r['psi']:.4f} |")
    print("\nservice time split: job created -> claimed by the worker (Job.started_at) / claimed -> "
          "monitoring_run.finished")
    for r in results:
        print(f"  {r['path']}: {r['queued']:.2f} s / {r['service'] - r['queued']:.2f} s; the same job run by "
              f"job_execute in this process after the worker stopped: {in_process[r['path']]:.2f} s")
    if profile_text:
        print(profile_text)


if __name__ == "__main__":
    main()
