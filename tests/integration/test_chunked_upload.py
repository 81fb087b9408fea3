"""A real chunked upload (Transfer-Encoding: chunked, no Content-Length) to a real gunicorn serving
governance.wsgi: the server answers 413 once the file passes DATASET_MAX_UPLOAD_BYTES, while the
client is still sending, instead of reading (and spooling) the whole body first."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import client_for
from tests.integration.conftest import ROOT, _database_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LIMIT = 1_000_000
TOTAL = 64 * 1024 * 1024  # what the client would send if nobody stopped it
CHUNK = 64 * 1024


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    spool = tmp_path / "spool"
    spool.mkdir()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _database_url(),
           "VAR_DIR": str(settings.VAR_DIR), "MEDIA_ROOT": str(tmp_path / "media"),
           "DATASET_MAX_UPLOAD_BYTES": str(LIMIT), "FILE_UPLOAD_TEMP_DIR": str(spool)}
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "governance.wsgi", "--bind", f"127.0.0.1:{port}",
                                "--workers", "1", "--timeout", "60"],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "gunicorn.log").read_text()) from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_a_chunked_upload_past_the_limit_is_answered_413_while_it_streams(gunicorn, developer):  # noqa: ANN001
    token = client_for(developer)._credentials["HTTP_AUTHORIZATION"]
    boundary = "governance-test-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nchunked\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\na,target\r\n").encode()
    connection = socket.create_connection(("127.0.0.1", gunicorn), timeout=30)
    connection.sendall((f"POST /api/v1/datasets/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\n"
                        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                        f"Transfer-Encoding: chunked\r\n\r\n").encode() + _chunk(head))
    sent, answer, row = 0, b"", b"1,0\r\n" * (CHUNK // 5)
    connection.setblocking(False)
    while sent < TOTAL and not answer:
        readable, writable, _ = select.select([connection], [connection], [], 10)
        if readable:
            answer = connection.recv(65536)
            break
        if writable:
            try:
                sent += connection.send(_chunk(row))  # a partial send only happens when the buffer is full
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
    connection.setblocking(True)
    if not answer:
        connection.settimeout(10)
        answer = connection.recv(65536)
    while b"\r\n\r\n" in answer and not answer.rstrip().endswith(b"}"):
        more = connection.recv(65536)
        if not more:
            break
        answer += more
    connection.close()

    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:500]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "payload_too_large" and "DATASET_MAX_UPLOAD_BYTES" in body["error"]["message"]
    # The answer came while the client still had most of the body to send: the server stopped reading
    # near the limit (plus what the sockets' buffers hold), not at the end of 64 MB.
    assert sent < TOTAL // 2, f"{sent} of {TOTAL} bytes were sent before the answer"
