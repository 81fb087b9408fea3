"""WSGI entry point (gunicorn governance.wsgi): Django's handler, with bodies of unknown length
(chunked uploads) read within their limits (governance/uploads.py)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
django.setup(set_prefix=False)

from governance.uploads import GovernanceWSGIHandler  # noqa: E402 - needs the settings configured

application = GovernanceWSGIHandler()
