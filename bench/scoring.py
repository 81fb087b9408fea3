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
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
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
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # the session (= group) we created for it
            except ProcessLookupError:
                pass
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
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", path, headers=headers)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
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
    args = parser.parse_args()
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
        token = manage("create_api_user", "bench-scorer", "--role", role).strip().splitlines()[-1]
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
