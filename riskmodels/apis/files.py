"""Stream files from the default storage: downloads carry the SHA-256 recorded for them."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse

PARQUET = "application/vnd.apache.parquet"


def stored_download(path: str, *, sha256: str, filename: str, content_type: str) -> FileResponse:
    """Return the stored file as an attachment, with its recorded hash in ``X-Content-SHA256``."""
    response = FileResponse(default_storage.open(path, "rb"), as_attachment=True, filename=filename,
                            content_type=content_type)
    response["X-Content-SHA256"] = sha256
    return response


def download_response(download: Any, *, content_type: str) -> FileResponse:
    """Return an audited download (riskmodels.services.downloads) as an attachment with its recorded hash."""
    response = FileResponse(download.handle, as_attachment=True, filename=download.filename, content_type=content_type)
    response["X-Content-SHA256"] = download.sha256
    return response


def stored_png(path: str) -> FileResponse:
    """Return a stored PNG inline."""
    return FileResponse(default_storage.open(path, "rb"), content_type="image/png")
