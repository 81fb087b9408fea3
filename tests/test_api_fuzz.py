"""Requests generated from the live OpenAPI schema (schemathesis, its default checks) never get a server error.

schemathesis runs as its own process against a live server holding real rows (a dataset version, a
model, a submitted version with its evaluation and SHAP report, a champion with a scoring policy) with
real tokens, so requests reach the views rather than stopping at 401 or 403: a developer's over every
operation, then a validator's, a compliance officer's and an underwriter's over the operations only
their role may use. ``FUZZ_EXAMPLES`` sets the examples per operation and switches the test on: CI's PostgreSQL
stage sets 5; ``make test`` leaves it off (about two minutes of requests). Generation is deterministic, so a run is the same run every time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from governance.accounts import api_token_issue
from governance.env import env_int
from riskmodels.models import ModelVersion, VersionStatus
from riskmodels.services.lifecycle import version_submit
from riskmodels.services.reviews import registered_model_inventory_update
from tests.conftest import register_demo_dataset, register_model, train_submittable_version, train_version

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    # Two minutes of requests: CI's PostgreSQL stage runs it (where a database's strictness, NUL
    # bytes or huge integers, can turn bad input into a 500), not every `make test`.
    pytest.mark.skipif("FUZZ_EXAMPLES" not in os.environ,
                       reason="schemathesis runs in CI's PostgreSQL stage; set FUZZ_EXAMPLES=5 to run it here"),
]

EXAMPLES = env_int("FUZZ_EXAMPLES", 5)
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Logging out (one token, or all of them) revokes the very token the run authenticates with: every
# request after it would stop at 401. Both are tested in tests/governance.
EXCLUDED_PATHS = ["/api/v1/auth/logout/", "/api/v1/auth/logout-all/"]
# Each persona and the operations (a path regex; None: all) only its role gets past the permission check of.
PASSES = [
    ("developer", None),
    ("validator", r"/(take|validate|return|reject|findings)/$|^/api/v1/findings/|^/api/v1/audit-(events|exports)/"),
    ("compliance_officer", r"/(approve|promote|retire|inventory|cancel|legal-holds|lift)/$"
                           r"|^/api/v1/audit-(events|exports)/|^/api/v1/inventory/"),
    ("underwriter", r"/(score|batch-scoring|override|notice|reproduce)/$|^/api/v1/(outcomes|decisions)/"),
]


def run_schemathesis(*, base_url: str, token: str, examples: int, paths: str | None,
                     report_dir: Path) -> tuple[int, str, Path]:
    """Run ``schemathesis run`` with its default checks; return its exit code, its output and its NDJSON report."""
    command = [str(SCHEMATHESIS), "run", f"{base_url}/api/schema/?format=json",
               "--header", f"Authorization: Token {token}", "--max-examples", str(examples),
               "--generation-deterministic", "--workers", "1", "--no-color", "--request-timeout", "60",
               "--report", "ndjson", "--report-dir", str(report_dir)]
    for path in EXCLUDED_PATHS:
        command += ["--exclude-path", path]
    if paths is not None:
        command += ["--include-path-regex", paths]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=report_dir)
    return done.returncode, done.stdout + done.stderr, next(report_dir.glob("*.ndjson"))


def statuses(report: Path) -> Counter[int]:
    """Count the status codes of every response recorded in a schemathesis NDJSON report."""
    counted: Counter[int] = Counter()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("status_code"), int) and "elapsed" in node:
                counted[node["status_code"]] += 1
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    with report.open() as lines:
        for line in lines:
            walk(json.loads(line))
    return counted


def seed(*, developer: Any, compliance_officer: Any) -> None:
    """Real rows for the id-taking operations: a submitted version with its evidence and a scoring champion."""
    dataset_version = register_demo_dataset(developer)
    model = register_model(developer)
    submitted = train_submittable_version(developer, model, dataset_version)
    version_submit(actor=developer, version=submitted, rationale="Ready for independent validation.")
    champion = train_version(developer, model, dataset_version)
    # The lifecycle that makes a champion is tested in test_lifecycle; scoring needs its result.
    ModelVersion.objects.filter(pk=champion.pk).update(status=VersionStatus.CHAMPION)
    registered_model_inventory_update(actor=compliance_officer, model=model,
                                      changes={"scoring_policy": {"cutoff": 0.5, "refer_from": 0.35}})


def server_error_reports(output: str) -> str:
    """Keep, of schemathesis's output, the failure blocks (one per operation) that report a server error."""
    blocks = re.split(r"\n(?=_{3,} )", output)
    return "\n".join(block for block in blocks if "Server error" in block) or output[-10_000:]


def other_failures(output: str) -> str:
    """Summarise schemathesis's failure counts ("ST103 Undocumented status code: 95, ...")."""
    return ", ".join(re.findall(r"(ST\d+ [^:\n]+: \d+)", output)) or "none failed"


def test_no_request_generated_from_the_schema_gets_a_server_error(  # noqa: ANN001
        live_server, developer, validator, compliance_officer, underwriter, tmp_path, capsys):
    seed(developer=developer, compliance_officer=compliance_officer)
    personas = {"developer": developer, "validator": validator, "compliance_officer": compliance_officer,
                "underwriter": underwriter}

    for persona, paths in PASSES:
        token, _ = api_token_issue(user=personas[persona])
        report_dir = tmp_path / persona
        report_dir.mkdir()
        started = time.monotonic()
        code, output, report = run_schemathesis(base_url=live_server.url, token=token, examples=EXAMPLES,
                                                paths=paths, report_dir=report_dir)
        counted = statuses(report)
        with capsys.disabled():
            print(f"\nschemathesis as {persona}: {EXAMPLES} examples per operation, {sum(counted.values())} "
                  f"requests in {time.monotonic() - started:.0f} s, statuses {dict(sorted(counted.items()))}; "
                  f"other checks: {other_failures(output)}")
        assert "Server error" not in output and not any(status >= 500 for status in counted), \
            server_error_reports(output)
        assert counted, f"schemathesis made no request (exit {code}):\n{output[-5_000:]}"
        assert sum(n for status, n in counted.items() if status < 300) > 0, "no request reached a view"
