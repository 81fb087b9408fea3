"""The project package and the compliance domain (audit log, roles, approvals, exports)."""

from governance.celery import app as celery_app

__all__ = ["celery_app"]
