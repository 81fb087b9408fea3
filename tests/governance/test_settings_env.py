"""Settings helpers fail loudly on bad values; production settings refuse to start without a secret,
while the embedded default generates one that every process of the install shares."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from governance.env import env_bool, env_int, env_list, env_rate, secret_in_file

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


def test_env_rate_takes_a_count_per_period_and_refuses_anything_else(monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("THROTTLE_UPLOAD", "lots")
    with pytest.raises(ImproperlyConfigured, match="THROTTLE_UPLOAD='lots' is not a rate"):
        env_rate("THROTTLE_UPLOAD", "30/hour")
    monkeypatch.setenv("THROTTLE_UPLOAD", "5/min")
    assert env_rate("THROTTLE_UPLOAD", "30/hour") == "5/min"
    monkeypatch.delenv("THROTTLE_UPLOAD")
    assert env_rate("THROTTLE_UPLOAD", "30/hour") == "30/hour"


def _run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Drop what tests/settings.py put in this process's environment: production defaults apply.
    dropped = {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
               "CSRF_COOKIE_SECURE", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE", "DATABASE_URL"}
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path):  # noqa: ANN001
    # The settings refuse before connecting, so the database need not exist.
    result = _run_manage("check", env={"DEBUG": "0", "VAR_DIR": str(tmp_path),
                                       "DATABASE_URL": "postgres://governance@db.example.org/governance"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_the_embedded_default_runs_commands_without_a_secret_key_and_keeps_the_one_it_made(tmp_path):  # noqa: ANN001
    # What the README runs beside `make run`: no DEBUG, no SECRET_KEY, no DATABASE_URL.
    result = _run_manage("shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)",
                         env={"VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip().splitlines()[-1]
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert printed == key_file.read_text().strip()
    assert secret_in_file(key_file) == printed  # the next process reads the same key


def test_a_generated_secret_is_long_private_and_the_same_for_every_caller(tmp_path):  # noqa: ANN001
    path = tmp_path / "var" / "secret_key"
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: secret_in_file(path), range(16)))
    assert len(secrets) == 1 and len(secrets.pop()) >= 50
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no temporary file left behind


def test_an_emptied_secret_file_stops_the_process_with_what_to_do(tmp_path):  # noqa: ANN001
    path = tmp_path / "secret_key"
    path.write_text("\n")
    with pytest.raises(ImproperlyConfigured, match="is empty; delete it"):
        secret_in_file(path)


def test_check_deploy_passes_with_production_settings(tmp_path):  # noqa: ANN001
    result = _run_manage(
        "check", "--deploy", "--fail-level", "WARNING",
        env={"DEBUG": "0", "SECRET_KEY": "a-long-random-production-secret-" + "k" * 40 + "-9f8e7d6c",
             "ALLOWED_HOSTS": "governance.example.org", "VAR_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_alert_webhook_without_its_secret_stops_the_process_naming_both(tmp_path):  # noqa: ANN001
    # Never a default secret: an unsigned webhook would let anyone forge alerts to the receiver.
    result = _run_manage("check", env={"DEBUG": "1", "VAR_DIR": str(tmp_path),
                                       "ALERT_WEBHOOK_URL": "https://hooks.example.org/model-alerts"})
    assert result.returncode != 0
    assert "ALERT_WEBHOOK_URL is set but ALERT_WEBHOOK_SECRET is not" in result.stderr
    signed = _run_manage("check", env={"DEBUG": "1", "VAR_DIR": str(tmp_path),
                                       "ALERT_WEBHOOK_URL": "https://hooks.example.org/model-alerts",
                                       "ALERT_WEBHOOK_SECRET": "shared-with-the-receiver"})
    assert signed.returncode == 0, signed.stderr


_CACHE_PROBE = ("from django.conf import settings; from django.core.cache import cache; cache.set('probe', 7); "
                "print(settings.CACHES['default']['BACKEND'], cache.get('probe'))")


def test_the_cache_is_per_process_by_default_and_redis_when_cache_url_names_it(tmp_path):  # noqa: ANN001
    import socket

    local = _run_manage("shell", "-c", _CACHE_PROBE, env={"DEBUG": "1", "VAR_DIR": str(tmp_path)})
    assert local.stdout.strip().splitlines()[-1].split() == ["django.core.cache.backends.locmem.LocMemCache", "7"], local.stderr
    bad = _run_manage("check", env={"DEBUG": "1", "VAR_DIR": str(tmp_path), "CACHE_URL": "memcached://x"})
    assert bad.returncode != 0 and "CACHE_URL='memcached://x'" in bad.stderr
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    shared = _run_manage("shell", "-c", _CACHE_PROBE,
                         env={"DEBUG": "1", "VAR_DIR": str(tmp_path), "CACHE_URL": "redis://127.0.0.1:6379/9"})
    assert shared.stdout.strip().splitlines()[-1].split() == ["django.core.cache.backends.redis.RedisCache", "7"], shared.stderr


def test_s3_storage_without_a_bucket_stops_the_process_naming_it(tmp_path):  # noqa: ANN001
    result = _run_manage("check", env={"DEBUG": "1", "VAR_DIR": str(tmp_path), "STORAGE_BACKEND": "s3"})
    assert result.returncode != 0
    assert "STORAGE_BACKEND=s3 needs S3_BUCKET" in result.stderr
    with_bucket = _run_manage("check", env={"DEBUG": "1", "VAR_DIR": str(tmp_path), "STORAGE_BACKEND": "s3",
                                            "S3_BUCKET": "governance"})
    assert with_bucket.returncode == 0, with_bucket.stderr
