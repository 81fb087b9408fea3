"""Worker process signals: each task's peak resident set is logged (Linux)."""

from __future__ import annotations

import logging
import sys

import pytest
from celery.signals import task_postrun, task_prerun

import governance.celery  # noqa: F401 - connects the handlers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_a_tasks_peak_memory_and_its_growth_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Task:
        name = "riskmodels.example"

    with caplog.at_level(logging.INFO, logger="governance.worker"):
        task_prerun.send(sender=Task, task_id="t-1", task=Task)
        block = bytearray(64 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch every page, so it is resident
        task_postrun.send(sender=Task, task_id="t-1", task=Task)
    del block
    lines = [r.getMessage() for r in caplog.records if "peak resident set" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("task riskmodels.example[t-1] peak resident set")
    growth = int(lines[0].split(", ")[1].split(" MB")[0])
    assert growth >= 60  # the 64 MB the task touched


def test_a_task_that_was_never_started_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="governance.worker"):
        task_postrun.send(sender=None, task_id="never-started", task=None)
    assert not [r for r in caplog.records if "peak resident set" in r.getMessage()]
