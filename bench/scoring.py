"""Benchmark: single-applicant scoring latency over HTTP, our service against MLflow's
``mlflow models serve`` of the same fitted scikit-learn pipeline answering predict-only, in one run.

Run by hand (it is not a test; about a minute with the defaults, more on the first run, which
builds MLflow's virtual environment)::

    .venv/bin/python bench/scoring.py
    .venv/bin/python bench/scoring.py --keepalive            # and a kept-alive connection per side
    .venv/bin/python bench/scoring.py --service-endpoint explain-rows --requests 200
    .venv/bin/python bench/scoring.py --quick                # 100 requests, 10 warm-up

Service: a throwaway install in a temporary ``VAR_DIR`` (SQLite, the filesystem broker):
``manage.py migrate``, ``collectstatic``, ``demo_setup`` (which trains, evaluates, explains and
approves the champion of ``retail-pd`` itself, running its jobs in its own process, so no Celery
worker is needed; it needs ``DEBUG=1`` because it creates users with known passwords), an API
user (role ``underwriter``; ``developer`` for explain-rows), then gunicorn as
scripts/run-demo.sh starts it (``--workers 2``, sync workers) but with ``DEBUG=0``. Endpoint
under test: ``POST /api/v1/models/retail-pd/score/`` (``--service-endpoint score``, one
application with a unique reference per request), or today's
``POST /api/v1/model-versions/<id>/explain-rows/`` (``explain-rows``: the PD and the SHAP reason
codes, audited), which lets the harness run before the scoring endpoint exists.

MLflow: its own virtual environment outside the repository (``--mlflow-venv``, created on first
use: the scikit-learn, numpy, pandas, scipy and threadpoolctl pins of requirements.txt plus
``mlflow==MLFLOW_VERSION``; never in the project's requirements). The champion's artifact is
read here with its hash checked and loaded by ``load_artifact`` (skops, trusted types only),
pickled into the temporary directory and saved there by ``mlflow.sklearn.save_model`` in the
MLflow environment, with ``pyfunc_predict_fn="predict_proba"`` (MLflow's default is ``predict``,
a class label), skops as MLflow 3 saves by default with the project's ``TRUSTED_TYPES`` (MLflow
refuses to save an HGB pipeline without them), and a signature inferred from rows prepared by
``prepare_features``: categoricals ``string``, numbers ``double``. With it MLflow parses the JSON
integers as float64, as the service does; the strings reach the pipeline as pandas' ``str``
dtype, not ``object``, which gives the same PDs (checked below; without a signature, int64 and
``str`` columns, the PDs were the same too). Served by ``mlflow models serve --env-manager
local`` (uvicorn; ``--mlflow-workers``, MLflow's default 1).
Request: ``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` of one row to
``/invocations``; the PD is the ``predict_proba`` column of class 1.

Rows: the German Credit CSV the demo registers (demo/german_credit.csv, the same bytes as
shared/data/german_credit.csv), the model's features only, JSON-typed as the API expects
(categoricals strings, numbers numbers); request ``i`` sends row ``i % --rows`` to both sides.

Measurement: the same client code for both sides, ``http.client`` in this process. After three
bursts of concurrent requests per side (so that every worker process has loaded the model and,
on the service, built its explainer: about 1.4 s, paid by the first request a worker serves) and
``--warmup`` sequential requests per side, ``--requests``
per side, interleaved (service, MLflow, service, ...), one row each. Mode "new connection": a
TCP connection per request (what a simple client does). With ``--keepalive``, a second mode with
one kept-alive connection per side, run only when both servers keep connections open (gunicorn's
sync workers close every one: ``--gunicorn-threads N`` runs its threaded workers, which keep them).
Time: from before the connection (or the request, kept alive) to the last byte of the response;
the answers are parsed and checked outside the clock. Correctness: every answer's PD is compared
with ``predict_proba`` of the same pipeline in this process; the largest differences are printed
and must stay within 1e-9. Every process started is stopped at the end, on Ctrl-C and on errors.

Part 2, ``--batch``: batch scoring of a large dataset version, a ``batch_score`` job run by real
Celery worker processes, against the bare in-process pair ``pipeline.predict_proba(X)`` +
``shap.TreeExplainer(model).shap_values(X_preprocessed)`` on the same rows, in the same run
(about 2.5 minutes at 100,000 rows with both phases, 5 at a million with two workers on a quiet machine)::

    .venv/bin/python bench/scoring.py --batch                                   # 1,000,000 rows, PostgreSQL
    .venv/bin/python bench/scoring.py --batch --batch-rows 100000 --batch-workers 2 1
    .venv/bin/python bench/scoring.py --batch --batch-rows 100000 --database sqlite

Set-up, in a temporary ``VAR_DIR`` with ``DEBUG=0`` (with DEBUG on, Django keeps the SQL of the
last 9,000 queries of every connection: gigabytes of bulk inserts) and the filesystem broker: a
fresh PostgreSQL database (``createdb -h 127.0.0.1 -U postgres bench_scoring_<pid>``, trust auth,
dropped at the end; ``--pg-options`` appends a query string to ``DATABASE_URL``, i.e. Django
``OPTIONS``) or SQLite (``--database sqlite``). HistGradientBoosting (service defaults) trained
through the service on 40,000 rows of bench/synthetic.py's data plus one text column of noise
(``region``, four levels), so that the categorical paths are exercised. The version is made champion by setting its status directly
(``ModelVersion.objects.filter(pk=...).update(status=VersionStatus.CHAMPION)``, as the scoring
tests do), not through submit / validate / approve / promote; a compliance officer sets the
scoring policy (cutoff 0.5) through ``registered_model_inventory_update``; an underwriter
creates the jobs. The scored dataset version has ``--batch-rows`` rows (another seed).

Phases (``--batch-workers``): two worker processes with one thread each, and optionally one with
two threads, as bench/shap.py; ``EXPLAIN_PARALLELISM`` equals the processes, so with
``SCORING_BATCH_CHUNK_ROWS`` = ``--batch-chunk`` (50,000) a job has an even number of chunks. Two
warm-up jobs of 4,000 rows first (model, explainer and connection in every worker). Each
measurement (``--batch-repeats``) is the bare pair, then a job. Bare: ``predict_proba`` on the
prepared frame (its own preprocessing inside), explainer construction and ``shap_values`` on the
preprocessed matrix (prepared outside the clock), in this process with its OpenMP threads (2 on
this machine: ``predict_proba`` uses them, shap's TreeExplainer is single-threaded). Service:
``batch_scoring_job_create`` → the ``batch_scoring.finished`` audit event (gate, planning, chunk
tasks, ledger inserts, Parquet parts, the merge into ``decisions.parquet``). Meanwhile the job is
polled every 0.25 s for when its chunks were planned and all done (the rest is the merge); the
runner records each chunk's seconds. CPU seconds of the worker pool processes and of the
PostgreSQL server (all its clients) over the job. Memory: the pool processes' peak resident set
(``VmHWM``, reset through ``clear_refs``) and each task's growth as the workers log it
(governance/celery.py). Correctness: the PD column of ``decisions.parquet`` against the bare
``predict_proba`` (max |difference|), and the ledger rows of the job (``CreditDecision``) = rows.

Then, with the workers stopped, a job is planned in this process (``job_execute``; its chunk
tasks go to a broker nobody reads any more) and one fresh chunk is run by
``batch_scoring_chunk_work`` under one thread, its phases timed by wrapping what the service
module calls (rows read, score + explain, ledger rows, ledger insert, Parquet part; the rest
is the gate, the commit and the Parquet columns built as lists), and another under cProfile
(``--no-profile`` skips it). Every worker, temporary folder and the database go at the end, on
Ctrl-C and on errors.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# This folder holds shap.py: keep it off the path so "import shap" (via the services) finds the library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

MLFLOW_VERSION = "3.17.2"  # the latest that installed beside the pins below (2026-12-05)
MLFLOW_PINNED = ("scikit-learn", "numpy", "pandas", "scipy", "threadpoolctl")  # taken from requirements.txt
DEFAULT_MLFLOW_VENV = Path("/work/bench-venvs/mlflow")
DEMO_MODEL = "retail-pd"
DATA = ROOT / "demo" / "german_credit.csv"
TOLERANCE = 1e-9
HOST = "127.0.0.1"

# Run in MLflow's environment: save the pickled pipeline as an MLflow model, print the versions.
MLFLOW_SAVE = r"""
import json, pickle, sys
from importlib import metadata
import mlflow.sklearn
from mlflow.models import infer_signature

source, target = sys.argv[1], sys.argv[2]
with open(source, "rb") as handle:
    handed = pickle.load(handle)
pipeline, example = handed["pipeline"], handed["example"]
signature = infer_signature(example, pipeline.predict_proba(example))
mlflow.sklearn.save_model(
    pipeline, target, signature=signature, input_example=example.head(1), pyfunc_predict_fn="predict_proba",
    serialization_format="skops", skops_trusted_types=handed["trusted"],
    pip_requirements=[f"{d}=={metadata.version(d)}" for d in ("mlflow", "scikit-learn", "numpy", "pandas", "scipy")])
print(json.dumps({"signature": signature.to_dict(),
                  "versions": {d: metadata.version(d) for d in ("mlflow", "scikit-learn", "numpy", "pandas", "scipy",
                                                                "uvicorn")}}))
"""


def pins_from_requirements() -> list[str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.split("[")[0].strip().lower()] = version.strip()
    return [f"{name}=={pins[name]}" for name in MLFLOW_PINNED]


def ensure_mlflow_venv(venv: Path) -> Path:
    """Return the MLflow environment's python, creating it or installing the pins when needed."""
    python = venv / "bin" / "python"
    wanted = [*pins_from_requirements(), f"mlflow=={MLFLOW_VERSION}"]
    if python.exists():
        check = "from importlib import metadata as m; import sys; " + "; ".join(
            f"assert m.version({p.split('==')[0]!r}) == {p.split('==')[1]!r}" for p in wanted)
        if subprocess.run([python, "-c", check], capture_output=True).returncode == 0:
            return python
    else:
        base = shutil.which("python3.11") or "/root/.pyenv/versions/3.11.7/bin/python3.11"
        print(f"creating MLflow's environment {venv} ({base})", flush=True)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    print(f"installing into {venv}: {' '.join(wanted)}", flush=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", *wanted], check=True)
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Processes:
    """Servers started by the benchmark, each in a session of its own: stopping one stops its children."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list, env: dict) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        return "\n".join((self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        for _, proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # the session (= group) we created for it
        deadline = time.monotonic() + 20
        for name, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop on SIGTERM; killing it", file=sys.stderr)
            for _ in range(50):  # its children too (gunicorn or uvicorn workers)
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    break
                if time.monotonic() > deadline:
                    os.killpg(proc.pid, signal.SIGKILL)
                time.sleep(0.1)
            proc.wait()
        self.procs.clear()


def wait_until_up(name: str, proc: subprocess.Popen, procs: Processes, path: str, port: int,
                  headers: dict[str, str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{procs.log_tail(name)}")
        with contextlib.suppress(OSError):  # not listening yet
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", path, headers=headers)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"{name} did not answer GET {path} within {timeout:.0f} s:\n{procs.log_tail(name)}")


class Side:
    """One server as the client sees it: where to POST, with which headers, and how to read the PD."""

    def __init__(self, name: str, port: int, path: str, headers: dict[str, str], body, pd) -> None:  # noqa: ANN001
        self.name, self.port, self.path, self.headers = name, port, path, headers
        self.body, self.pd = body, pd  # body(tag, row) -> bytes; pd(parsed answer) -> float
        self.conn: http.client.HTTPConnection | None = None
        self.connections = 0

    def post(self, payload: bytes, keepalive: bool) -> tuple[float, int, bytes, bool]:
        """Send one request; return (seconds, status, body, whether the server closes the connection)."""
        started = time.perf_counter()
        if self.conn is None or not keepalive:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            self.conn.connect()
            self.connections += 1
        self.conn.request("POST", self.path, body=payload, headers=self.headers)
        response = self.conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        closes = response.will_close
        if closes or not keepalive:
            self.conn.close()
            self.conn = None
        return elapsed, response.status, data, closes

    def burst(self, payloads: list[bytes]) -> None:
        """Send these requests at once, each on its own connection: every worker process of the server
        gets some (a busy sync worker does not accept), so none is still cold when the clock runs."""
        def one(payload: bytes) -> None:
            conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
            conn.request("POST", self.path, body=payload, headers=self.headers)
            response = conn.getresponse()
            data = response.read()
            conn.close()
            if response.status != 200:
                raise RuntimeError(f"{self.name} answered {response.status}: {data[:2000].decode(errors='replace')}")

        with ThreadPoolExecutor(len(payloads)) as pool:
            list(pool.map(one, payloads))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


# --- Part 2: --batch, batch scoring of a dataset version by real Celery workers -----------------------------

TRAIN_ROWS = 40_000
REGIONS = ["north", "south", "east", "west"]
WARMUP_ROWS = 4_000  # two chunks of 2,000 with two workers: each worker loads the model and builds its explainer
TASK_PEAK = re.compile(r"task (?P<task>[\w.]+)\[[^]]*\] peak resident set (?P<peak>\d+) MB, (?P<growth>[+-]\d+) MB")
TASK_NAMES = {"riskmodels.run_job": "coordinator", "riskmodels.run_job_chunk": "chunk (the last also merges)"}


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


class Workers:
    """``count`` Celery worker processes with one pool process each, in sessions of their own (as bench/shap.py)."""

    def __init__(self, count: int, threads: int, logs: Path, env: dict[str, str]) -> None:
        env = {**env, "CELERY_WORKER_CONCURRENCY": "1", "WORKER_THREADS": str(threads)}
        self.logs = [logs / f"worker-{count}-{i}.log" for i in range(count)]
        self.procs: list[subprocess.Popen] = []
        for i, log in enumerate(self.logs):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "governance", "worker", "--loglevel=INFO", "--concurrency=1",
                 f"--hostname=batch{i}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=ROOT, env=env, start_new_session=True, stdout=log.open("wb"), stderr=subprocess.STDOUT))

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc, log in zip(self.procs, self.logs, strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            if all(b"ready." in log.read_bytes() for log in self.logs):
                return
            time.sleep(0.25)
        raise RuntimeError("the workers did not get ready")

    def log_marks(self) -> list[int]:
        return [log.stat().st_size for log in self.logs]

    def task_peaks(self, marks: list[int]) -> dict[str, tuple[float, float]]:
        """Largest (peak MB, growth MB) of one task, per kind of task, logged since ``marks`` (governance/celery.py)."""
        found: dict[str, tuple[float, float]] = {}
        for log, mark in zip(self.logs, marks, strict=True):
            with log.open("rb") as handle:
                handle.seek(mark)
                for line in handle.read().decode(errors="replace").splitlines():
                    hit = TASK_PEAK.search(line)
                    if hit:
                        name = TASK_NAMES.get(hit["task"], hit["task"])
                        old = found.get(name, (0.0, -1e9))
                        found[name] = (max(old[0], float(hit["peak"])), max(old[1], float(hit["growth"])))
        return found

    def pool_pids(self) -> list[int]:
        pids = []
        for proc in self.procs:
            pids += [int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        return pids

    def reset_peaks(self) -> dict[int, float]:
        base = {}
        for pid in self.pool_pids():
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            base[pid] = _status_mb(pid, "VmRSS")
        return base

    def peaks(self, base: dict[int, float]) -> list[tuple[float, float]]:
        return [(_status_mb(pid, "VmHWM"), _status_mb(pid, "VmHWM") - rss) for pid, rss in base.items()]

    def stop(self) -> None:
        """SIGTERM each worker's session (warm shutdown); SIGKILL what is left after 20 s (Ctrl-C mid-task)."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs:
            while time.monotonic() < deadline:
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    break
                proc.poll()
                time.sleep(0.1)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.procs.clear()


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (0 for one that has gone)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _postgres_cpu_seconds() -> float:
    """CPU seconds of the PostgreSQL server on this machine so far: the postmaster with the children it
    has reaped (backends end with their connections, CONN_MAX_AGE=0), plus its live children."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # a process that ended meanwhile
                if (entry / "comm").read_text().strip() == "postgres":
                    stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
    total = 0.0
    for fields in stats.values():
        parent = int(fields[1])
        total += (int(fields[11]) + int(fields[12])) / ticks
        if parent not in stats:  # the postmaster
            total += (int(fields[13]) + int(fields[14])) / ticks
    return total



def close_connections() -> None:
    """Close Django's database connections, if Django is set up (so the benchmark's database can be dropped)."""
    with contextlib.suppress(Exception):  # Django may not be set up yet
        from django.db import connections

        connections.close_all()


def register_synthetic(actor, tmp: Path, name: str, rows: int, seed: int, *, drop: tuple[str, ...] = (),  # noqa: ANN001, ANN201
                       shift: float = 0.0):
    """Register bench/synthetic.py's data plus one text column of noise (``region``) as a dataset version.

    The text column exercises the categorical paths; ``drop`` removes columns, ``shift`` moves x0.
    """
    import numpy as np
    import pandas as pd

    from riskmodels.services.datasets import dataset_version_create

    sys.path.insert(0, str(HERE))
    try:
        from synthetic import make_numeric_data
    finally:
        sys.path.remove(str(HERE))
    path = tmp / f"{name}.parquet"
    make_numeric_data(rows, path, seed=seed)
    frame = pd.read_parquet(path).drop(columns=list(drop))
    frame["x0"] += shift
    frame.insert(0, "region", np.random.default_rng(seed).choice(REGIONS, size=rows))
    frame.to_parquet(path)
    del frame
    version, _ = dataset_version_create(actor=actor, name=name, source=str(path), filename=path.name, target="default")
    path.unlink()
    return version


def train_champion(developer, training, model_name: str):  # noqa: ANN001, ANN201
    """Train HistGradientBoosting (service defaults) on ``training`` in this process and make it champion.

    Not through submit / validate / approve / promote (riskmodels/services/lifecycle.py): a benchmark
    sets the status directly, as tests/riskmodels/test_scoring_api.py does.
    """
    from riskmodels.jobs.kinds import job_execute
    from riskmodels.models import Job, JobStatus, ModelVersion, VersionStatus
    from riskmodels.services.registry import registered_model_create
    from riskmodels.services.training import training_job_create

    model = registered_model_create(actor=developer, name=model_name, owner_team="bench", purpose="benchmark")
    job = training_job_create(actor=developer, registered_model=model, dataset_version=training,
                              request={"algorithm": "gradient_boosting"})
    job_execute(job_id=job.pk)
    Job.objects.filter(status=JobStatus.QUEUED).delete()  # its evaluation and battery: not needed here
    version = ModelVersion.objects.get(training_job=job)
    ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.CHAMPION)
    return model, ModelVersion.objects.get(pk=version.pk)


class PhaseTimer:
    """Time the phases of ``batch_scoring_chunk_work`` in this process by wrapping what it calls (no service change)."""

    PHASES = ("read rows", "score + explain", "ledger rows", "ledger insert", "Parquet part")

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self._undo: list = []

    def _wrap(self, owner, name: str, phase: str) -> None:  # noqa: ANN001
        original = getattr(owner, name)
        seconds = self.seconds

        def timed(*a, **k):  # noqa: ANN002, ANN003, ANN202
            started = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                seconds[phase] += time.perf_counter() - started

        setattr(owner, name, timed)
        self._undo.append((owner, name, original, name in vars(owner)))

    def __enter__(self) -> PhaseTimer:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from riskmodels.services import batch_scoring

        self._wrap(batch_scoring, "dataset_rows", "read rows")
        self._wrap(batch_scoring, "score_matrix", "score + explain")
        self._wrap(batch_scoring, "_ledger_rows", "ledger rows")
        self._wrap(batch_scoring, "_ledger_append", "ledger insert")
        # pyarrow's Table is immutable: the module sees a stand-in for pyarrow whose Table.from_pydict is timed.
        stand_in = types.ModuleType("pyarrow")
        stand_in.__dict__.update(vars(pa))
        stand_in.Table = types.SimpleNamespace(from_pydict=pa.Table.from_pydict)
        self._wrap(stand_in.Table, "from_pydict", "Parquet part")
        self._undo.append((batch_scoring, "pa", pa, True))
        batch_scoring.pa = stand_in
        self._wrap(pq, "write_table", "Parquet part")
        self._wrap(batch_scoring, "save_bytes", "Parquet part")
        return self

    def __exit__(self, *_: object) -> None:
        for owner, name, original, _own in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def batch_main(args: argparse.Namespace) -> None:  # noqa: C901, PLR0912, PLR0915 - one linear script
    load_at_start = os.getloadavg()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    var = tmp / "var"
    var.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "STORAGE_BACKEND",
                                                            "SECRET_KEY", "DEBUG")}
    # DEBUG off: with it, Django keeps the SQL of the last 9,000 queries per connection (the
    # bulk inserts of a million rows would be gigabytes of SQL text in each worker).
    env.update({"VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "governance.settings", "DEBUG": "0",
                "SECRET_KEY": "bench-batch-" + os.urandom(24).hex(), "SCORING_BATCH_CHUNK_ROWS": str(args.batch_chunk),
                "EXPLAIN_BUDGET_SECONDS": "1000000", "ARROW_DEFAULT_MEMORY_POOL": "system"})
    database = None
    if args.database == "postgres":
        database = f"bench_scoring_{os.getpid()}"
        subprocess.run(["createdb", "-h", args.pg_host, "-p", str(args.pg_port), "-U", "postgres", database], check=True)
        env["DATABASE_URL"] = f"postgres://postgres@{args.pg_host}:{args.pg_port}/{database}" + (
            f"?{args.pg_options}" if args.pg_options else "")
    os.environ.update(env)
    for key in ("DATABASE_URL", "CELERY_BROKER_URL", "STORAGE_BACKEND"):
        if key not in env:
            os.environ.pop(key, None)
    pool = None
    try:
        import django

        django.setup()
        import numpy as np
        import pandas as pd
        import shap
        from django.conf import settings
        from django.core.files.storage import default_storage
        from django.core.management import call_command
        from django.db import connection
        from threadpoolctl import threadpool_info, threadpool_limits

        call_command("migrate", verbosity=0)
        import pyarrow.parquet as pq

        from governance.accounts import team_get_or_create, user_upsert
        from governance.models import AuditEvent
        from riskmodels.jobs.kinds import job_execute
        from riskmodels.ml.persistence import load_artifact
        from riskmodels.ml.pipelines import TrainingSpec, prepare_features
        from riskmodels.models import CreditDecision, Job, JobChunk, JobStatus
        from riskmodels.services.batch_scoring import batch_scoring_chunk_work, batch_scoring_job_create
        from riskmodels.services.reviews import registered_model_inventory_update
        from riskmodels.storage import dataset_frame

        bench_team = team_get_or_create(name="bench").slug  # benchmark objects in their own team
        dev, _ = user_upsert(username="bench-dev", role="developer", teams=[bench_team])
        officer, _ = user_upsert(username="bench-officer", role="compliance_officer", teams=[bench_team])
        underwriter, _ = user_upsert(username="bench-underwriter", role="underwriter", teams=[bench_team])

        started = time.perf_counter()
        training = register_synthetic(dev, tmp, "train", TRAIN_ROWS, seed=3)
        model, version = train_champion(dev, training, "bench-batch")
        model = registered_model_inventory_update(actor=officer, model=model,
                                                  changes={"scoring_policy": {"cutoff": 0.5}})
        spec = TrainingSpec.from_dict(version.spec)
        pipeline = load_artifact(default_storage.open(version.artifact_path).read(),
                                 expected_sha256=version.artifact_sha256)
        dataset = register_synthetic(dev, tmp, f"batch-{args.batch_rows}", args.batch_rows, seed=100)
        warmup = register_synthetic(dev, tmp, "warm-up", WARMUP_ROWS, seed=99)
        print(f"set-up {time.perf_counter() - started:.0f} s: {args.database}, HGB {dict(spec.hyperparameters)} trained on "
              f"{TRAIN_ROWS:,} rows; dataset version of {args.batch_rows:,} rows x {len(spec.features)} features ({len(spec.categorical)} categorical); "
              f"load average {load_at_start[0]:.2f}", flush=True)

        # The bare pair's input, prepared once outside the clock.
        prepared = prepare_features(dataset_frame(dataset), spec)
        X = pipeline[:-1].transform(prepared)
        positive = list(pipeline.classes_).index(1)
        openmp = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "openmp"]

        def bare() -> tuple[float, float, float, np.ndarray]:
            t0 = time.perf_counter()
            pd_values = pipeline.predict_proba(prepared)[:, positive]
            t1 = time.perf_counter()
            shap.TreeExplainer(pipeline[-1]).shap_values(X)
            t2 = time.perf_counter()
            return t2 - t0, t1 - t0, t2 - t1, pd_values

        def event_time(action: str, job: Job) -> float:
            return AuditEvent.objects.get(action=action, target_id=str(job.pk)).created_at.timestamp()

        def run_job(dataset_version) -> dict:  # noqa: ANN001
            started = time.time()
            job = batch_scoring_job_create(actor=underwriter, model=model, dataset_version=dataset_version)
            planned = all_done = None
            # Poll gently (every 0.25 s: a tight poll takes CPU from the workers); the end comes from the audit event.
            while True:
                status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).get()
                if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
                    break
                now = time.time()
                chunks = list(JobChunk.objects.filter(job=job).values_list("status", flat=True))
                if chunks and planned is None:
                    planned = now
                if chunks and all_done is None and all(s == JobChunk.Status.DONE for s in chunks):
                    all_done = now
                time.sleep(0.25)
            job = Job.objects.get(pk=job.pk)
            assert status == JobStatus.SUCCEEDED, job.error
            finished = event_time("batch_scoring.finished", job)
            seconds = list(JobChunk.objects.filter(job=job).order_by("index").values_list("seconds", flat=True))
            return {"job": job, "service": finished - started, "planned": (planned or finished) - started,
                    "all_done": (all_done or finished) - started, "chunk_seconds": seconds}

        results = []
        for workers in args.batch_workers:
            threads = max(1, (os.cpu_count() or 2) // workers)
            settings.EXPLAIN_PARALLELISM = workers  # chunks per job: a multiple of the worker processes
            pool = Workers(workers, threads, tmp, {**os.environ, "EXPLAIN_PARALLELISM": str(workers)})
            pool.wait_ready()
            for _ in range(2):  # warm-up: imports, artifact, explainer and DB connection in every worker
                run_job(warmup)
            while Job.objects.exclude(status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED]).exists():
                time.sleep(0.2)
            pipeline.predict_proba(prepared.head(1000))  # page in both sides' code outside the clock
            shap.TreeExplainer(pipeline[-1]).shap_values(X[:1000])
            for repeat in range(args.batch_repeats):
                total, predict_s, shap_s, pd_values = bare()
                if repeat == 0:
                    base, marks = pool.reset_peaks(), pool.log_marks()
                load = os.getloadavg()[0]
                worker_pids = pool.pool_pids()
                cpu_before = (_cpu_seconds(worker_pids), _postgres_cpu_seconds(), time.perf_counter())
                run = run_job(dataset)
                run["cpu_workers"] = _cpu_seconds(worker_pids) - cpu_before[0]
                run["cpu_postgres"] = _postgres_cpu_seconds() - cpu_before[1]
                run.update(workers=workers, threads=threads, bare=total, predict=predict_s, shap=shap_s, load=load)
                seconds = run["chunk_seconds"]
                print(f"  {workers} worker(s) x {threads} thread(s), {args.batch_rows:,} rows: bare {total:7.2f} s "
                      f"(predict_proba {predict_s:.2f} s + shap {shap_s:.2f} s)  service {run['service']:7.2f} s  "
                      f"({len(seconds)} chunks, {min(seconds):.2f}-{max(seconds):.2f} s each; load {load:.2f})", flush=True)
                results.append(run)
            run["peaks"], run["tasks"] = pool.peaks(base), pool.task_peaks(marks)
            job = run["job"]
            with default_storage.open(job.result["output_path"], "rb") as handle:
                table = pq.read_table(handle, columns=["row", "pd"]).to_pandas().sort_values("row")
            assert list(table["row"]) == list(range(args.batch_rows))
            run["diff"] = float(np.max(np.abs(table["pd"].to_numpy() - pd_values)))
            run["ledger"] = CreditDecision.objects.filter(job=job).count()
            del table
            pool.stop()
            pool = None

        # One chunk in this process, timed by phase, then one under cProfile: fresh chunks of a
        # job planned here (its chunk tasks are sent to a broker no worker reads any more).
        from riskmodels.services.scoring import scorer_for
        from riskmodels.ml.scoring import ScoringPolicy

        settings.EXPLAIN_PARALLELISM = max(args.batch_workers)
        job = batch_scoring_job_create(actor=underwriter, model=model, dataset_version=dataset)
        job_execute(job_id=job.pk)
        job = Job.objects.select_related("model_version__registered_model", "dataset_version", "registered_model"
                                         ).get(pk=job.pk)
        chunks = list(JobChunk.objects.filter(job=job).order_by("index"))
        scorer_for(job.model_version, policy=ScoringPolicy.from_dict(job.params["policy"]))  # the cache, as warm workers
        with threadpool_limits(limits=1):  # as one of two worker processes
            timer = PhaseTimer()
            t0 = time.perf_counter()
            with timer:
                batch_scoring_chunk_work(job, chunks[0])
            chunk_total = time.perf_counter() - t0
            profile_text = ""
            if args.batch_profile and len(chunks) > 1:
                import cProfile
                import io
                import pstats

                profiler = cProfile.Profile()
                profiler.enable()
                batch_scoring_chunk_work(job, chunks[1])
                profiler.disable()
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                stats.sort_stats("tottime").print_stats(18)
                stats.sort_stats("cumulative").print_stats(30)
                profile_text = out.getvalue()
        chunk_rows = chunks[0].stop - chunks[0].start
        ledger_total = CreditDecision.objects.count()
        table_size = ""
        if args.database == "postgres":
            with connection.cursor() as cursor:
                cursor.execute("select pg_size_pretty(pg_total_relation_size('riskmodels_creditdecision'))")
                table_size = cursor.fetchone()[0]
        load_at_end = os.getloadavg()
    finally:
        if pool is not None:
            pool.stop()
        close_connections()
        if database:
            subprocess.run(["dropdb", "--force", "-h", args.pg_host, "-p", str(args.pg_port), "-U", "postgres",
                            database], check=False)
        shutil.rmtree(tmp, ignore_errors=True)

    import sklearn

    print(f"\nload average at the start {load_at_start[0]:.2f} {load_at_start[1]:.2f} {load_at_start[2]:.2f}, "
          f"at the end {load_at_end[0]:.2f} {load_at_end[1]:.2f} {load_at_end[2]:.2f}; {os.cpu_count()} CPUs")
    print(f"database {args.database}{' ?' + args.pg_options if args.pg_options else ''}{' (PostgreSQL, ledger table ' + table_size + ' with ' + format(ledger_total, ',') + ' rows at the end)' if table_size else ''}; "
          f"filesystem broker; chunks of at most {args.batch_chunk:,} rows (SCORING_BATCH_CHUNK_ROWS); "
          f"scikit-learn {sklearn.__version__}, shap {shap.__version__}; bare pair in this process with "
          f"{openmp or '?'} OpenMP thread(s) (predict_proba; shap's TreeExplainer is single-threaded)\n")
    print("| database | workers | rows | chunks | bare pair | service | service / bare | rows/s bare | rows/s service "
          "| worker peak RSS MB (growth) | PD max abs diff | ledger rows |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for run in results:
        if "diff" not in run:
            continue
        mem = ", ".join(f"{peak:.0f} (+{growth:.0f})" for peak, growth in run["peaks"])
        n = args.batch_rows
        print(f"| {args.database} | {run['workers']} x {run['threads']} thread(s) | {n:,} | {len(run['chunk_seconds'])} | "
              f"{run['bare']:.2f} s | {run['service']:.2f} s | {run['service'] / run['bare']:.2f}x | {n / run['bare']:,.0f} | "
              f"{n / run['service']:,.0f} | {mem} | {run['diff']:.1e} | {run['ledger']:,}"
              f"{' OK' if run['ledger'] == n else ' WRONG'} |")
    print("\nwhere the service time went (polled every 0.25 s from this process; chunk seconds as the runner records "
          "them; \"→ finished\" is the merge plus up to one poll interval, 0.00 when the poll saw the job end first):")
    print("| workers | bare: predict_proba | bare: shap | created → chunks planned | → every chunk done | → finished (merge) "
          "| chunk seconds min / median / max | sum of chunk seconds |")
    print("|---:|---:|---:|---:|---:|---:|---|---:|")
    for run in results:
        s = sorted(run["chunk_seconds"])
        print(f"| {run['workers']} | {run['predict']:.2f} s | {run['shap']:.2f} s | {run['planned']:.2f} s | "
              f"{run['all_done'] - run['planned']:.2f} s | {run['service'] - run['all_done']:.2f} s | "
              f"{s[0]:.2f} / {s[len(s) // 2]:.2f} / {s[-1]:.2f} s | {sum(s):.1f} s |")
    print("\nCPU seconds during the service run: worker pool processes / the PostgreSQL server (all its "
          "clients, other work's too) / wall clock x cores")
    for run in results:
        server = f"{run['cpu_postgres']:.1f} s" if args.database == "postgres" else "n/a (SQLite)"
        print(f"  {run['workers']} worker(s): {run['cpu_workers']:.1f} s / {server} / "
              f"{run['service'] * (os.cpu_count() or 1):.1f} s")
    print("\nlargest resident set of one task, MB (growth over the task's start), as the workers log it:")
    for run in results:
        if "tasks" in run:
            print(f"  {run['workers']} worker(s): " + "; ".join(f"{name} {peak:.0f} ({growth:+.0f})"
                                                                for name, (peak, growth) in sorted(run["tasks"].items())))
    print(f"\none chunk of {chunk_rows:,} rows in this process (1 thread, warm explainer cache), by phase:")
    print("| phase | seconds | share | µs per row |")
    print("|---|---:|---:|---:|")
    other = chunk_total - sum(timer.seconds.values())
    for phase, s in [*timer.seconds.items(), ("other (gate, scorer, commit, Parquet columns as lists)", other),
                     ("total", chunk_total)]:
        print(f"| {phase} | {s:.2f} | {s / chunk_total:.0%} | {s / chunk_rows * 1e6:.1f} |")
    if profile_text:
        print(f"\ncProfile of another chunk of {chunks[1].stop - chunks[1].start:,} rows (same process):")
        print(profile_text)


def main() -> None:  # noqa: C901, PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="measured requests per side and mode")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up requests per side and mode")
    parser.add_argument("--rows", type=int, default=200, help="German Credit rows cycled through")
    parser.add_argument("--service-endpoint", choices=["score", "explain-rows"], default="score")
    parser.add_argument("--keepalive", action="store_true", help="also measure a kept-alive connection per side")
    parser.add_argument("--quick", action="store_true", help="100 requests, 10 warm-up")
    parser.add_argument("--mlflow-venv", type=Path, default=DEFAULT_MLFLOW_VENV)
    parser.add_argument("--mlflow-workers", type=int, default=1, help="uvicorn workers (MLflow's default: 1)")
    parser.add_argument("--gunicorn-workers", type=int, default=2, help="as scripts/run-demo.sh")
    parser.add_argument("--gunicorn-threads", type=int, default=0,
                        help="0: sync workers, as scripts/run-demo.sh; N: gthread workers with N threads")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database, model)")
    parser.add_argument("--dump", type=Path, help="write every measured time (seconds, in request order) as JSON here")
    batch = parser.add_argument_group("--batch: batch scoring by Celery workers against the bare pair")
    batch.add_argument("--batch", action="store_true", help="run part 2 (batch scoring) instead of the HTTP benchmark")
    batch.add_argument("--batch-rows", type=int, default=1_000_000, help="rows of the scored dataset version")
    batch.add_argument("--batch-chunk", type=int, default=50_000, help="SCORING_BATCH_CHUNK_ROWS")
    batch.add_argument("--batch-workers", type=int, nargs="+", choices=[1, 2], default=[2],
                       help="phases: two worker processes (1 thread each), one (2 threads)")
    batch.add_argument("--batch-repeats", type=int, default=1, help="bare pair + job, per phase")
    batch.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    batch.add_argument("--pg-host", default="127.0.0.1")
    batch.add_argument("--pg-port", type=int, default=5432)
    batch.add_argument("--pg-options", default="",
                       help="query string appended to DATABASE_URL (Django OPTIONS), e.g. server_side_binding=true")
    batch.add_argument("--no-profile", dest="batch_profile", action="store_false",
                       help="skip the cProfile of one chunk")
    args = parser.parse_args()
    if args.batch:
        batch_main(args)
        return
    if args.quick:
        args.requests, args.warmup = 100, 10

    load_at_start = os.getloadavg()
    # So that the finally below stops the servers on Ctrl-C or kill, even if started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    mlflow_python = ensure_mlflow_venv(args.mlflow_venv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    var = tmp / "var"
    var.mkdir()
    base_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL",
                                                                    "STORAGE_BACKEND", "SECRET_KEY")}
    base_env.update({"VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "governance.settings"})
    setup_env = {**base_env, "DEBUG": "1"}  # demo_setup refuses to run otherwise
    procs = Processes(tmp)
    try:
        def manage(*command: str) -> str:
            done = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=setup_env,
                                  capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"manage.py {' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
            return done.stdout

        started = time.perf_counter()
        manage("migrate", "--noinput")
        manage("collectstatic", "--noinput")
        print(manage("demo_setup").strip().splitlines()[-1], flush=True)
        os.environ.update(setup_env)
        import django

        django.setup()
        from riskmodels.ml.persistence import TRUSTED_TYPES, load_artifact
        from riskmodels.ml.pipelines import TrainingSpec, prepare_features
        from riskmodels.models import ModelVersion, VersionStatus
        from riskmodels.storage import read_verified

        # Underwriters score; explain-rows needs a role that may explain.
        role = "underwriter" if args.service_endpoint == "score" else "developer"
        token = manage("create_api_user", "bench-scorer", "--role", role,
                       "--team", "retail-credit").strip().splitlines()[-1]  # the demo's team
        champion = ModelVersion.objects.get(registered_model__name=DEMO_MODEL, status=VersionStatus.CHAMPION)
        spec = TrainingSpec.from_dict(champion.spec)
        pipeline = load_artifact(read_verified(champion.artifact_path, champion.artifact_sha256),
                                 expected_sha256=champion.artifact_sha256)
        print(f"set-up {time.perf_counter() - started:.0f} s: {DEMO_MODEL} v{champion.version} (id {champion.pk}) "
              f"champion, {champion.algorithm} {dict(spec.hyperparameters)}; API user role {role}", flush=True)

        import pandas as pd

        frame = pd.read_csv(args.data).head(args.rows)
        prepared = prepare_features(frame, spec)
        positive = list(pipeline.classes_).index(1)
        reference = pipeline.predict_proba(prepared)[:, positive]
        categorical = set(spec.categorical)
        rows = [{f: (str(v) if f in categorical else (v.item() if hasattr(v, "item") else v))
                 for f, v in zip(spec.features, values, strict=True)}
                for values in frame[list(spec.features)].itertuples(index=False)]
        assert all(isinstance(v, int | float) for r in rows for f, v in r.items() if f not in categorical)

        # MLflow's copy of the same fitted object, saved by MLflow in its own environment.
        handed = tmp / "pipeline.pkl"
        with handed.open("wb") as handle:
            pickle.dump({"pipeline": pipeline, "example": prepared.head(20), "trusted": TRUSTED_TYPES}, handle)
        done = subprocess.run([mlflow_python, "-c", MLFLOW_SAVE, str(handed), str(tmp / "mlflow-model")],
                              capture_output=True, text=True, env={**os.environ, "MLFLOW_TRACKING_URI": str(tmp / "mlruns")})
        if done.returncode:
            raise RuntimeError(f"mlflow.sklearn.save_model failed:\n{done.stdout}\n{done.stderr}")
        saved = json.loads(done.stdout.strip().splitlines()[-1])
        mlflow_versions = saved["versions"]
        print("MLflow signature inputs: " + ", ".join(
            f"{c['name']}:{c['type']}" for c in json.loads(saved["signature"]["inputs"])), flush=True)

        # Servers.
        service_port, mlflow_port = free_port(), free_port()
        service_env = {**base_env, "DEBUG": "0", "ALLOWED_HOSTS": f"{HOST},localhost", "SECURE_SSL_REDIRECT": "0",
                       "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0"}
        gunicorn = [sys.executable, "-m", "gunicorn", "governance.wsgi", "--bind", f"{HOST}:{service_port}",
                    "--workers", str(args.gunicorn_workers)]
        if args.gunicorn_threads:
            gunicorn += ["--threads", str(args.gunicorn_threads)]
        service_proc = procs.start("gunicorn", gunicorn, service_env)
        mlflow_bin = str(mlflow_python.parent)
        mlflow_env = {**base_env, "PATH": mlflow_bin + os.pathsep + os.environ.get("PATH", ""),
                      "MLFLOW_TRACKING_URI": str(tmp / "mlruns"), "VIRTUAL_ENV": str(mlflow_python.parent.parent)}
        mlflow_proc = procs.start("mlflow", [
            mlflow_python, "-m", "mlflow", "models", "serve", "-m", str(tmp / "mlflow-model"), "--env-manager", "local",
            "-h", HOST, "-p", str(mlflow_port), "--workers", str(args.mlflow_workers)], mlflow_env)
        auth = {"Authorization": f"Token {token}", "Accept": "application/json"}
        wait_until_up("gunicorn", service_proc, procs, "/api/v1/me/", service_port, auth)
        wait_until_up("mlflow", mlflow_proc, procs, "/ping", mlflow_port, {})

        json_headers = {"Content-Type": "application/json"}
        run_id = f"{os.getpid()}-{int(time.time())}"
        if args.service_endpoint == "score":
            service_path = f"/api/v1/models/{DEMO_MODEL}/score/"

            def service_body(tag: str, row: dict) -> bytes:
                return json.dumps({"applications": [{"reference": f"bench-{run_id}-{tag}", "features": row}]}).encode()

            def service_pd(answer: dict) -> float:
                if answer.get("model_version") != champion.pk:
                    raise AssertionError(f"scored by model version {answer.get('model_version')}, not {champion.pk}")
                return float(answer["decisions"][0]["pd"])
        else:
            service_path = f"/api/v1/model-versions/{champion.pk}/explain-rows/"

            def service_body(tag: str, row: dict) -> bytes:  # noqa: ARG001
                return json.dumps({"rows": [row]}).encode()

            def service_pd(answer: dict) -> float:
                explanation = answer["explanations"][0]
                output = float(explanation["output"])
                if explanation["output_space"] == "log_odds":
                    return 1.0 / (1.0 + math.exp(-output))
                return output

        columns = list(spec.features)

        def mlflow_body(tag: str, row: dict) -> bytes:  # noqa: ARG001
            return json.dumps({"dataframe_split": {"columns": columns, "data": [[row[c] for c in columns]]}}).encode()

        def mlflow_pd(answer: dict) -> float:
            return float(answer["predictions"][0][positive])

        service = Side("service", service_port, service_path, {**json_headers, **auth}, service_body, service_pd)
        mlflow_side = Side("mlflow", mlflow_port, "/invocations", json_headers, mlflow_body, mlflow_pd)
        sides = (service, mlflow_side)
        concurrency = max(args.gunicorn_workers * max(args.gunicorn_threads, 1), args.mlflow_workers)
        diffs = {side.name: 0.0 for side in sides}
        answers: dict[str, dict[int, float]] = {side.name: {} for side in sides}

        def call(side: Side, i: int, keepalive: bool, tag: str) -> tuple[float, bool]:
            row = i % len(rows)
            elapsed, status, data, closes = side.post(side.body(f"{tag}-{i}", rows[row]), keepalive)
            if status != 200:
                raise RuntimeError(f"{side.name} answered {status}: {data[:2000].decode(errors='replace')}")
            pd_value = side.pd(json.loads(data))
            diffs[side.name] = max(diffs[side.name], abs(pd_value - reference[row]))
            answers[side.name][row] = pd_value
            return elapsed, closes

        def run(keepalive: bool, tag: str) -> dict[str, list[float]]:
            times: dict[str, list[float]] = {side.name: [] for side in sides}
            for side in sides:
                side.connections = 0
                for burst in range(3):
                    side.burst([side.body(f"{tag}-burst-{burst}-{j}", rows[j % len(rows)]) for j in range(2 * concurrency)])
            for i in range(args.warmup):
                for side in sides:
                    call(side, i, keepalive, f"{tag}-warm")
            for i in range(args.requests):
                for side in sides:
                    times[side.name].append(call(side, i, keepalive, tag)[0])
            for side in sides:
                side.close()
            return times

        modes = {"new connection": run(False, "new")}
        checked = sorted(answers["service"].keys() & answers["mlflow"].keys())
        both = max(abs(answers["service"][r] - answers["mlflow"][r]) for r in checked)
        print(f"PD check over {len(checked)} rows (every answer against the pipeline), max |difference|: service vs pipeline {diffs['service']:.2e}, "
              f"MLflow vs pipeline {diffs['mlflow']:.2e}, service vs MLflow {both:.2e} "
              f"({'OK' if max(diffs.values()) <= TOLERANCE else 'FAILED'}: tolerance {TOLERANCE:g})", flush=True)
        if max(diffs.values()) > TOLERANCE:
            raise SystemExit("the two sides do not give the same PD: the timings would compare different work")
        connections = {}
        if args.keepalive:
            kept = {side.name: not side.post(side.body("probe", rows[0]), True)[3] for side in sides}
            for side in sides:
                side.close()
            if all(kept.values()):
                modes["kept-alive connection"] = run(True, "kept")
                connections = {side.name: side.connections for side in sides}
            else:
                closing = ", ".join(name for name, k in kept.items() if not k)
                print(f"kept-alive mode skipped: {closing} closes every connection"
                      + (" (gunicorn's sync workers do; --gunicorn-threads N runs threaded workers that keep them)"
                         if not kept["service"] else ""), flush=True)
        load_at_end = os.getloadavg()
    finally:
        procs.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    ms = 1000.0
    versions = {"scikit-learn": metadata.version("scikit-learn"), "gunicorn": metadata.version("gunicorn"),
                "django": metadata.version("django")}
    worker_kind = f"gthread x{args.gunicorn_threads}" if args.gunicorn_threads else "sync"
    print(f"\nload average at the start {load_at_start[0]:.2f} {load_at_start[1]:.2f} {load_at_start[2]:.2f}, "
          f"at the end {load_at_end[0]:.2f}; {os.cpu_count()} CPUs")
    print(f"model: {DEMO_MODEL} v{champion.version}, {champion.algorithm} {dict(spec.hyperparameters)}, "
          f"{len(spec.features)} features ({len(spec.categorical)} categorical)")
    print(f"service: POST {service_path} (--service-endpoint {args.service_endpoint}), gunicorn {versions['gunicorn']} "
          f"{args.gunicorn_workers} {worker_kind} workers, DEBUG=0, Django {versions['django']}, "
          f"scikit-learn {versions['scikit-learn']}, SQLite")
    print(f"MLflow: mlflow {mlflow_versions['mlflow']} models serve --env-manager local, uvicorn "
          f"{mlflow_versions['uvicorn']} x{args.mlflow_workers} worker(s), scikit-learn {mlflow_versions['scikit-learn']}, "
          f"pandas {mlflow_versions['pandas']}, numpy {mlflow_versions['numpy']}; predict_proba only")
    print(f"{args.requests} requests per side and mode, interleaved, after {args.warmup} warm-up each; one row per "
          f"request, cycling through {len(rows)} German Credit rows\n")
    print("| mode | side | p50 | p90 | p99 | mean | max |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for mode, times in modes.items():
        for name in ("service", "mlflow"):
            t = times[name]
            print(f"| {mode} | {name} | {percentile(t, 50) * ms:.2f} ms | {percentile(t, 90) * ms:.2f} ms | "
                  f"{percentile(t, 99) * ms:.2f} ms | {sum(t) / len(t) * ms:.2f} ms | {max(t) * ms:.1f} ms |")
    print("\n| mode | service / MLflow, p50 | service / MLflow, p99 | service / MLflow, mean |")
    print("|---|---:|---:|---:|")
    for mode, times in modes.items():
        s, m = times["service"], times["mlflow"]
        print(f"| {mode} | {percentile(s, 50) / percentile(m, 50):.2f}x | {percentile(s, 99) / percentile(m, 99):.2f}x | "
              f"{(sum(s) / len(s)) / (sum(m) / len(m)):.2f}x |")
    if connections:
        print(f"\nkept-alive mode: connections opened per side {connections}")
    if args.dump:
        args.dump.write_text(json.dumps(modes))


if __name__ == "__main__":
    main()
