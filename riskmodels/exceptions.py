"""Errors of the ML domain, mapped onto the service error classes the API understands."""

from governance.exceptions import ValidationFailed


class DatasetRejected(ValidationFailed):
    """The uploaded file or its declared schema cannot become a dataset version."""

    default_code = "dataset_rejected"


class NotificationDeferred(Exception):
    """A notification channel failed in a way worth trying again (no answer, 5xx, SMTP error); the task retries."""
