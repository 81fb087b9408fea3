"""Request bodies stay within their limits: a declared length over the limit is refused before the
body is read; a body of unknown length (chunked) is read no further than its limit; uploaded files
are cut off at DATASET_MAX_UPLOAD_BYTES while they arrive; a JSON body over its cap and a compressed
file that decodes past its cap get 413 in the one error shape, and nothing is written.
(A real chunked upload through gunicorn: tests/integration/test_chunked_upload.py.)"""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.client import BOUNDARY, encode_multipart

from governance.models import AuditEvent
from governance.uploads import StreamingBodyRequest, UploadTooLarge
from riskmodels.models import DatasetVersion
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db

MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def _upload(client, content: bytes, filename: str = "data.csv", **extra: str):  # noqa: ANN001,ANN202
    return client.post("/api/v1/datasets/", {"name": "limits", "file": SimpleUploadedFile(filename, content),
                                             "target": "target", **extra}, format="multipart")


def _nothing_written(media) -> bool:  # noqa: ANN001
    return (DatasetVersion.objects.count() == 0 and stored_files(media) == []
            and not AuditEvent.objects.filter(action="dataset_version.registered").exists())


# --- Declared lengths ------------------------------------------------------------------------------

def test_a_json_body_over_its_cap_gets_413_naming_the_setting_before_it_is_parsed(dev_client, settings):  # noqa: ANN001
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {"name": "x" * 2000, "owner_team": "risk", "purpose": "probe"}
    response = dev_client.post("/api/v1/models/", body, format="json")
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and "DATA_UPLOAD_MAX_MEMORY_SIZE" in error["message"]


def test_a_multipart_body_declaring_more_than_the_file_limit_is_refused_unread(dev_client, settings,  # noqa: ANN001
                                                                               _isolated_media):
    settings.DATASET_MAX_UPLOAD_BYTES = 1000
    response = _upload(dev_client, b"a,target\n" + b"1,0\n" * 40_000)
    assert response.status_code == 413
    assert "files may take 1000 bytes (DATASET_MAX_UPLOAD_BYTES)" in response.json()["error"]["message"]
    assert _nothing_written(_isolated_media)


def test_the_admin_gets_a_plain_413_page(developer, settings):  # noqa: ANN001
    settings.DATASET_MAX_UPLOAD_BYTES = 1000
    client = Client()
    client.force_login(developer)
    response = client.post("/admin/riskmodels/datasetversion/add/",
                           {"name": "limits", "file": SimpleUploadedFile("d.csv", b"a,target\n" + b"1,0\n" * 40_000)})
    assert response.status_code == 413
    assert b"Request too large" in response.content and b"DATASET_MAX_UPLOAD_BYTES" in response.content


def test_form_fields_over_their_cap_inside_an_upload_get_413_in_the_error_shape(dev_client, settings):  # noqa: ANN001
    # Django's own cap on a form's fields (RequestDataTooBig) is raised while DRF parses, inside the view.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = _upload(dev_client, b"a,target\n1,0\n2,1\n", note="n" * 5000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


# --- Files cut off while they arrive ---------------------------------------------------------------

def test_a_file_past_the_limit_is_stopped_while_it_is_received(dev_client, settings, _isolated_media):  # noqa: ANN001
    # Within the envelope, so the declared length passes: the upload handler stops the file itself.
    settings.DATASET_MAX_UPLOAD_BYTES = 1000
    response = _upload(dev_client, b"a,target\n" + b"1,0\n" * 1000)
    assert response.status_code == 413
    assert "passed 1000 bytes while it was being received" in response.json()["error"]["message"]
    assert _nothing_written(_isolated_media)


def _chunked_environ(body: bytes, content_type: str) -> tuple[dict, io.BytesIO]:
    """The WSGI environ gunicorn gives a chunked request: no CONTENT_LENGTH, the framing decoded, the input terminated."""
    stream = io.BytesIO(body)
    environ = Client().get("/").wsgi_request.environ.copy()  # a complete environ to start from
    environ.update({"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/datasets/", "CONTENT_TYPE": content_type,
                    "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": stream, "wsgi.input_terminated": True})
    environ.pop("CONTENT_LENGTH", None)
    return environ, stream


def test_a_chunked_upload_is_read_no_further_than_the_limit(settings):  # noqa: ANN001
    settings.DATASET_MAX_UPLOAD_BYTES = 100_000
    body = encode_multipart(BOUNDARY, {"name": "limits", "file": SimpleUploadedFile("d.csv", b"1,0\n" * 1_000_000)})
    environ, stream = _chunked_environ(body, MULTIPART)
    request = StreamingBodyRequest(environ)
    with pytest.raises(UploadTooLarge, match="DATASET_MAX_UPLOAD_BYTES"):
        request.FILES  # noqa: B018 - parsing is what is tested
    assert stream.tell() < 4 * 100_000 < len(body)  # stopped near the limit, not at the end of 4 MB


def test_a_chunked_upload_within_the_limit_is_read_whole(settings):  # noqa: ANN001
    settings.DATASET_MAX_UPLOAD_BYTES = 100_000
    content = b"a,target\n" + b"1,0\n" * 1000
    environ, _ = _chunked_environ(encode_multipart(BOUNDARY, {"name": "ok", "file": SimpleUploadedFile("d.csv", content)}),
                                  MULTIPART)
    request = StreamingBodyRequest(environ)
    assert request.FILES["file"].read() == content and request.POST["name"] == "ok"


def test_a_chunked_json_body_is_read_up_to_one_byte_over_its_cap_and_its_length_made_known(settings):  # noqa: ANN001
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    small = json.dumps({"name": "x"}).encode()
    environ, _ = _chunked_environ(small, "application/json")
    request = StreamingBodyRequest(environ)
    assert request.body == small and request.META["CONTENT_LENGTH"] == str(len(small))
    environ, stream = _chunked_environ(b"x" * 50_000, "application/json")
    request = StreamingBodyRequest(environ)
    assert request.META["CONTENT_LENGTH"] == "1001" and stream.tell() == 1001  # the size middleware refuses it


def test_without_a_server_that_decodes_chunks_the_raw_stream_is_never_parsed():
    environ, stream = _chunked_environ(b"5\r\nhello\r\n0\r\n\r\n", "application/json")
    del environ["wsgi.input_terminated"]
    request = StreamingBodyRequest(environ)
    assert request.body == b"" and stream.tell() == 0


def test_the_counting_handler_comes_first(settings):  # noqa: ANN001
    # Otherwise the chunk that crosses the limit would already be in memory or on disk.
    assert settings.FILE_UPLOAD_HANDLERS[0] == "governance.uploads.CappedUploadHandler"


# --- Compressed files ------------------------------------------------------------------------------

def test_a_parquet_bomb_gets_413_naming_the_limit_and_nothing_is_written(dev_client, settings,  # noqa: ANN001
                                                                         _isolated_media):
    settings.DATASET_MAX_DECODED_BYTES = 1_000_000
    rows = 2_000_000  # 32 MB decoded, about 30 KB uploaded
    buffer = io.BytesIO()
    pq.write_table(pa.table({"a": np.zeros(rows, dtype=np.int64), "target": np.arange(rows, dtype=np.int64) % 2}),
                   buffer, compression="zstd")
    assert len(buffer.getvalue()) < 100_000
    response = _upload(dev_client, buffer.getvalue(), filename="bomb.parquet")
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "decoded_too_large"
    assert "1000000 bytes" in error["message"] and "DATASET_MAX_DECODED_BYTES" in error["message"]
    assert _nothing_written(_isolated_media)


def test_a_gzip_bomb_is_refused_without_being_decompressed(dev_client, _isolated_media):  # noqa: ANN001
    # 64 MB of CSV in about 60 KB: the ingest names the archive from its first bytes and never inflates it.
    bomb = gzip.compress(b"a,target\n" + b"0,0\n" * (16 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200_000
    response = _upload(dev_client, bomb, filename="data.csv.gz")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_tabular" and "gzip" in response.json()["error"]["message"]
    assert _nothing_written(_isolated_media)
