"""gunicorn, told to stop (SIGTERM) while requests are in flight, finishes them and exits cleanly."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from riskmodels.models import DatasetVersion
from tests.conftest import client_for
from tests.integration.conftest import ROOT, process_env, slow_dataset, wait_for

pytestmark = pytest.mark.integration
UPLOADS = 2  # one per gunicorn worker: each is in flight when the signal lands, none waits in the backlog


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ping(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/v1/")
        return connection.getresponse().status < 500
    except OSError:  # not listening yet
        return False


def _start_upload(port: int, token: str, path: Path, name: str) -> tuple[http.client.HTTPConnection, bytes]:
    """Send an upload's headers and the first half of its body; return the connection and the rest.

    The server has taken the request and is reading it: it is in flight, whatever the machine's speed.
    """
    boundary = uuid.uuid4().hex
    fields = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
                      for key, value in {"name": name, "target": "default"}.items())
    body = (fields + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            f"Content-Type: text/csv\r\n\r\n".encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode())
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.putrequest("POST", "/api/v1/datasets/")
    for header, value in {"Authorization": f"Token {token}", "Content-Length": str(len(body)),
                          "Content-Type": f"multipart/form-data; boundary={boundary}"}.items():
        connection.putheader(header, value)
    connection.endheaders(body[:len(body) // 2])
    return connection, body[len(body) // 2:]


def _finish_upload(connection: http.client.HTTPConnection, rest: bytes) -> tuple[int, dict]:
    connection.send(rest)
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def test_gunicorn_stopped_mid_request_completes_every_request_in_flight_and_exits_cleanly(
        developer, tmp_path, transactional_db):  # noqa: ANN001
    token = client_for(developer)._credentials["HTTP_AUTHORIZATION"].split()[1]
    path = slow_dataset(tmp_path)
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "governance.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(UPLOADS),
         "--graceful-timeout", "60", "--access-logfile", "-", "--access-logformat", "served-by %(p)s %(s)s",
         "--no-control-socket"],
        cwd=ROOT, env=process_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Each worker imports the application as it boots: wait until every one has served a request,
        # or an upload would wait in the listen backlog, which a stopping server closes.
        wait_for(lambda: _ping(port) and len(set(re.findall(r"served-by <(\d+)>", log.read_text()))) >= UPLOADS,
                 timeout=120, interval=0.05)
        uploads = [_start_upload(port, token, path, f"upload-{i}") for i in range(UPLOADS)]
        time.sleep(1)  # an idle worker takes each connection and waits for the rest of its body
        server.send_signal(signal.SIGTERM)
        time.sleep(1)  # the workers have been told to stop before the uploads go on
        try:
            results = [_finish_upload(connection, rest) for connection, rest in uploads]
        except OSError as exc:
            raise AssertionError(f"a request in flight was cut off: {exc}\n{log.read_text()}") from exc
        assert server.wait(timeout=90) == 0, log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
    assert [status for status, _ in results] == [201] * UPLOADS, results
    assert DatasetVersion.objects.count() == UPLOADS
    assert "Handling signal: term" in log.read_text()
