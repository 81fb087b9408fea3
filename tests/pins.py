"""Read the exact version requirements.txt pins for a distribution (for the private-API guards)."""

from __future__ import annotations

import re
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"


def pinned(distribution: str) -> str:
    """Return the version pinned with ``==`` for ``distribution`` (extras allowed), or fail."""
    pattern = re.compile(rf"^{re.escape(distribution)}(\[[^\]]*\])?==(\S+)", re.IGNORECASE)
    for line in REQUIREMENTS.read_text().splitlines():
        match = pattern.match(line.strip())
        if match:
            return match.group(2)
    raise AssertionError(f"requirements.txt pins no exact version of {distribution}")
