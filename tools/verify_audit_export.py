#!/usr/bin/env python3
"""Verify an audit-trail export of the model-governance service, offline, with Python's standard library alone.

Usage::

    python3 verify_audit_export.py events.jsonl manifest.json [events.csv]

Exit status 0: the export is intact. 1: it is not; the first bad sequence number and what is
wrong with it are printed. 2: the files cannot be read or are not an export at all.

What is checked
---------------
* Every row's own hash: SHA-256 of the row's canonical bytes (the twelve hashed fields as
  JSON with sorted keys and no spaces, ``created_at`` in UTC with microseconds, exactly as the
  service computes them) must equal the row's ``hash``. Editing any field of a row breaks it.
* Sequence: the rows must come in the order, and with exactly the sequence numbers, that the
  manifest describes (``first_seq`` to ``last_seq`` less the ranges listed in ``gaps``). A
  deleted, inserted, duplicated or moved row is reported at the first sequence number that is
  missing or out of place.
* The chain links: where two rows are consecutive in the log (seq n and n+1), the second's
  ``prev_hash`` must be the first's ``hash``; row 1 links to the genesis hash (64 zeros).
* The manifest: row count, first and last sequence numbers, the SHA-256 of each file, and, when
  the export reaches the chain's head as it stood at the export, that the last row's hash is
  the head hash.

What a filtered export can and cannot prove
-------------------------------------------
An export filtered by model, actor, action or dates leaves out rows of the chain. Each row it
holds still proves its own content (its hash covers every field, including ``prev_hash``),
and consecutive rows still prove their link. The rows left out are listed in the manifest's
``gaps``: the verifier checks that nothing else is missing, but it cannot show what the left-out
rows said, nor that a row left out really failed the filter. An unfiltered export (the whole
log, or a date range, which is a contiguous slice) proves the unbroken chain between its
first and last rows; with its last row at the head, it proves the log's tail up to the export.

Everything above rests on the manifest being the one the service wrote. The service records
every export as an ``audit.exported`` event in the chain itself, carrying the manifest's SHA-256
and the files' SHA-256: compare the manifest's SHA-256 (printed on success) with that event in a
later export or in the service, and a manifest rewritten to match an altered file is exposed.
Anyone can recompute a SHA-256: the chain shows tampering with an export, not who made it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

GENESIS_HASH = "0" * 64
# The fields covered by a row's hash, as governance/audit.py serialises them.
HASHED_FIELDS = ("seq", "created_at", "actor_id", "actor_username", "action", "target_type", "target_id",
                 "target_repr", "before", "after", "request_id", "prev_hash")


class ExportBroken(Exception):
    """The export fails a check; ``seq`` is the first bad sequence number, when one can be named."""

    def __init__(self, seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.seq, self.reason = seq, reason


def canonical_bytes(row: dict) -> bytes:
    """Return the bytes a row's hash is the SHA-256 of: its hashed fields, sorted keys, no spaces."""
    body = {name: row[name] for name in HASHED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(row: dict) -> str:
    """Return the SHA-256 hex digest of a row's canonical bytes."""
    return hashlib.sha256(canonical_bytes(row)).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_seqs(manifest: dict):  # noqa: ANN201 - a generator of ints
    """Yield the sequence numbers the manifest says the export holds, in order."""
    if not manifest["row_count"]:
        return
    gaps = sorted((int(a), int(b)) for a, b in manifest.get("gaps", []))
    seq, last = int(manifest["first_seq"]), int(manifest["last_seq"])
    for start, end in gaps + [(last + 1, last + 1)]:
        while seq < start and seq <= last:
            yield seq
            seq += 1
        seq = max(seq, end + 1)


def _row(line: str, number: int, previous_seq: int | None) -> dict:
    try:
        row = json.loads(line)
    except ValueError:
        after = f"after row {previous_seq}" if previous_seq is not None else "at the start"
        raise ExportBroken(None if previous_seq is None else previous_seq + 1,
                           f"line {number} ({after}) is not valid JSON") from None
    missing = [name for name in (*HASHED_FIELDS, "hash") if not isinstance(row, dict) or name not in row]
    if missing:
        seq = row.get("seq") if isinstance(row, dict) else None
        raise ExportBroken(seq if isinstance(seq, int) else None, f"line {number} lacks {', '.join(missing)}")
    if not isinstance(row["seq"], int) or isinstance(row["seq"], bool):
        raise ExportBroken(None, f"line {number}: seq is not an integer")
    return row


def verify_rows(events: Path, manifest: dict) -> tuple[int, dict | None]:
    """Check every row against the manifest's sequence and the chain; return (rows, last row)."""
    expected = expected_seqs(manifest)
    previous: dict | None = None
    count = 0
    with events.open(encoding="utf-8", newline="\n") as handle:
        for number, line in enumerate(handle, start=1):
            row = _row(line, number, previous["seq"] if previous else None)
            seq = row["seq"]
            wanted = next(expected, None)
            if wanted is None:
                raise ExportBroken(seq, f"row {seq} is beyond the end the manifest records (last_seq "
                                        f"{manifest['last_seq']}): inserted?")
            if seq > wanted:
                raise ExportBroken(wanted, f"row {wanted} is missing (deleted or moved): row {seq} came instead")
            if seq < wanted:
                raise ExportBroken(seq, f"row {seq} is out of place (inserted, duplicated or moved): "
                                        f"row {wanted} was expected here")
            if row_hash(row) != row["hash"]:
                raise ExportBroken(seq, f"row {seq} was modified: its hash does not match its content")
            if seq == 1 and row["prev_hash"] != GENESIS_HASH:
                raise ExportBroken(seq, "row 1 does not start from the genesis hash")
            if previous is not None and previous["seq"] == seq - 1 and row["prev_hash"] != previous["hash"]:
                raise ExportBroken(seq, f"row {seq} does not link to row {seq - 1} (prev_hash differs)")
            previous, count = row, count + 1
    missing = next(expected, None)
    if missing is not None:
        raise ExportBroken(missing, f"row {missing} is missing: the file ends before the manifest's last_seq "
                                    f"{manifest['last_seq']}")
    return count, previous


def verify(events: Path, manifest_path: Path, others: list[Path] | None = None) -> str:
    """Verify an export; return a one-line summary or raise ExportBroken."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        head = manifest["chain_head"]
        int(manifest["row_count"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportBroken(None, f"{manifest_path} is not an audit export manifest ({exc})") from None
    count, last = verify_rows(events, manifest)
    if count != manifest["row_count"]:
        raise ExportBroken(None, f"the file has {count} rows, the manifest says {manifest['row_count']}")
    if last is not None and last["seq"] == head["seq"] and last["hash"] != head["hash"]:
        raise ExportBroken(last["seq"], f"row {last['seq']} is the head the manifest records, but its hash differs")
    for path in [events, *(others or [])]:
        recorded = files.get(path.name, {}).get("sha256")
        if recorded is None:
            raise ExportBroken(None, f"the manifest lists no file named {path.name}")
        if file_sha256(path) != recorded:
            raise ExportBroken(None, f"{path.name}'s SHA-256 differs from the manifest's (bytes changed outside "
                                     "the rows' hashed fields?)")
    span = f"rows {manifest['first_seq']}..{manifest['last_seq']}" if count else "no rows"
    gaps = len(manifest.get("gaps", []))
    kind = f"filtered ({gaps} ranges left out)" if gaps else "contiguous"
    return (f"OK: {count} rows, {span}, {kind}; chain head at export #{head['seq']}; "
            f"manifest SHA-256 {file_sha256(manifest_path)}")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    paths = [Path(a) for a in argv]
    for path in paths:
        if not path.is_file():
            print(f"ERROR: {path} is not a file", file=sys.stderr)
            return 2
    try:
        print(verify(paths[0], paths[1], paths[2:]))
    except ExportBroken as broken:
        where = f"first bad seq {broken.seq}: " if broken.seq is not None else ""
        print(f"FAIL: {where}{broken.reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
