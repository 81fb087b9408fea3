"""Settings helpers fail loudly on bad values; production settings refuse to start without a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from governance.env import env_bool, env_int, env_list

ROOT = Path(__file__).resolve().parents[2]


def test_env_bool_accepts_the_usual_spellings(monkeypatch):  # noqa: ANN001
    for raw, expected in [("1", True), ("yes", True), ("On", True), ("0", False), ("false", False), ("", False)]:
        monkeypatch.setenv("X_FLAG", raw)
        assert env_bool("X_FLAG") is expected


def test_env_bool_rejects_anything_else(monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG='maybe' is not a boolean"):
        env_bool("X_FLAG")


def test_env_int_rejects_non_numbers_and_values_below_the_minimum(monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("X_LIMIT", "ten")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("X_LIMIT", 1)
    monkeypatch.setenv("X_LIMIT", "0")
    with pytest.raises(ImproperlyConfigured, match="below the minimum"):
        env_int("X_LIMIT", 1, minimum=1)


def test_env_list_splits_and_strips(monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("X_HOSTS", " a.example , b.example,, ")
    assert env_list("X_HOSTS") == ["a.example", "b.example"]


def _run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Drop what tests/settings.py put in this process's environment: production defaults apply.
    dropped = {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
               "CSRF_COOKIE_SECURE", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path):  # noqa: ANN001
    result = _run_manage("check", env={"DEBUG": "0", "VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_check_deploy_passes_with_production_settings(tmp_path):  # noqa: ANN001
    result = _run_manage(
        "check", "--deploy", "--fail-level", "WARNING",
        env={"DEBUG": "0", "SECRET_KEY": "a-long-random-production-secret-" + "k" * 40 + "-9f8e7d6c",
             "ALLOWED_HOSTS": "governance.example.org", "VAR_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
