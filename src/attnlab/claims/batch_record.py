"""The ledger's record of its batches of trained runs: ``phases.jsonl`` beside ``claims.json``.

:class:`~attnlab.claims.runner.ReportingMemo` writes one JSON line per batch it hands to the memo (its
session, its claim, its runs, how long it took). Two readers take each claim's chain of batches from it:
the cost of the ledger (:mod:`attnlab.claims.cost`) and the order of the next ``reproduce`` into the same
folder (:mod:`attnlab.claims.workqueue`), each from the latest session that ran the claim.
"""

from __future__ import annotations

from pathlib import Path

from ..train.metrics import read_rows
from .provenance import utc

PHASES = "phases.jsonl"  # beside claims.json: every batch of trained runs, by claim


def session_started(session: str) -> str:
    """When the ``reproduce`` that wrote a phases line started (its session, ``<unix seconds>-<pid>``, as
    :class:`~attnlab.claims.runner.ReportingMemo` names it), UTC ISO 8601; "" (before everything) for a name of
    another form."""
    try:
        return utc(float(session.split("-")[0]))
    except (ValueError, OverflowError, OSError):
        return ""


def phases_by_claim(batches: list[dict], finished: dict[str, str] | None = None) -> dict[str, list[dict]]:
    """Each claim's batches of runs (``batches``: the rows of ``phases.jsonl``) from the latest ``reproduce`` that
    recorded any for it (earlier sessions' lines are superseded); with ``finished`` (claim → when its recorded
    result finished, UTC ISO 8601), the latest that had started by then: a later session's batches belong to a
    rerun that has not replaced it."""
    by: dict[str, dict[str, list[dict]]] = {}
    for row in batches:
        by.setdefault(row["claim"], {}).setdefault(row["session"], []).append(row)
    out_rows = {}
    for cid, rows in by.items():
        until = (finished or {}).get(cid)
        sessions = [s for s in rows if not until or session_started(s) <= until]
        if sessions:
            out_rows[cid] = rows[sessions[-1]]
    return out_rows


def recorded_batches(phases: Path) -> dict[str, int]:
    """Per claim, how many batches the latest ``reproduce`` that ran it handed to the memo (:func:`phases_by_claim`
    of the rows of ``phases``). An absent or damaged record is none: it only orders the runs, so it never stops
    a ledger (a torn last line, from a killed run, is dropped with a warning and the rest still count)."""
    try:
        return {cid: len(rows) for cid, rows in phases_by_claim(read_rows(phases)).items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
