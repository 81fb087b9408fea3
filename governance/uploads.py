"""Request bodies within their limits while they stream: the per-request cap on uploaded files,
the limit each kind of body has, and the WSGI request that reads a body of unknown length.

A body that declares its length is refused before it is read when the length is over its limit
(governance.middleware.RequestSizeLimitMiddleware). A chunked body declares none: gunicorn
decodes it and marks the input as terminated, and this request class lets Django read it, but
never more than its limit, and every uploaded file passes ``CappedUploadHandler``, which stops
the upload at DATASET_MAX_UPLOAD_BYTES while the bytes arrive rather than after they are spooled.
"""

from __future__ import annotations

import io
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler
from django.core.handlers.wsgi import LimitedStream, WSGIHandler, WSGIRequest

# Room for a multipart body's boundaries, part headers and small form fields around the file.
ENVELOPE_BYTES = 64 * 1024


def body_limit(content_type: str) -> tuple[int, str]:
    """Return the most bytes a body of ``content_type`` may have, and the limit in words (naming its setting)."""
    if content_type == "multipart/form-data":
        files = settings.DATASET_MAX_UPLOAD_BYTES
        return files + ENVELOPE_BYTES, (f"files may take {files} bytes (DATASET_MAX_UPLOAD_BYTES), "
                                        f"plus {ENVELOPE_BYTES} for the form around them")
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return limit, f"the limit is {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)"


class UploadTooLarge(RequestDataTooBig):
    """The files of one request passed DATASET_MAX_UPLOAD_BYTES while they were read (413 in the API)."""


class CappedUploadHandler(FileUploadHandler):
    """Count every uploaded byte of a request as it arrives, and stop the upload past the limit.

    First of FILE_UPLOAD_HANDLERS, so the chunk that crosses the limit never reaches the handler
    that would write it to memory or to a temporary file.
    """

    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.received = 0
        self.limit = settings.DATASET_MAX_UPLOAD_BYTES

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            raise UploadTooLarge(f"the upload passed {self.limit} bytes while it was being received; the limit is "
                                 f"{self.limit} bytes (DATASET_MAX_UPLOAD_BYTES)")
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler builds the file


def _unknown_length(environ: dict[str, Any]) -> bool:
    # Only a server that decoded the chunked framing itself marks the input as terminated; from
    # any other the stream holds the raw framing, which must not be parsed as the body.
    return (not environ.get("CONTENT_LENGTH") and bool(environ.get("wsgi.input_terminated"))
            and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower())


class StreamingBodyRequest(WSGIRequest):
    """A WSGI request that reads a body of unknown length (chunked), never past its kind's limit.

    Django reads exactly CONTENT_LENGTH bytes, so without one it would see an empty body. A form
    with files is streamed to the parser (the upload handler stops it at the file limit); any
    other body is read up to one byte over its limit, and its length, now known, is what the
    size middleware checks.
    """

    def __init__(self, environ: dict[str, Any]) -> None:
        super().__init__(environ)
        if not _unknown_length(environ):
            return
        limit, _ = body_limit(self.content_type)
        if self.content_type == "multipart/form-data":
            self.META["CONTENT_LENGTH"] = str(limit)
            self._stream = LimitedStream(environ["wsgi.input"], limit)
            return
        chunks, size = [], 0
        while size <= limit:
            chunk = environ["wsgi.input"].read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        body = b"".join(chunks)
        self.META["CONTENT_LENGTH"] = str(len(body))
        self._stream = LimitedStream(io.BytesIO(body), len(body))


class GovernanceWSGIHandler(WSGIHandler):
    """Django's WSGI handler with requests that can read chunked bodies within their limits."""

    request_class = StreamingBodyRequest
