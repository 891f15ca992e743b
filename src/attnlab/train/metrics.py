"""Reading a run's ``metrics.jsonl``: one JSON row per logged step (``split`` "train" or "valid").

A run killed while writing leaves a torn last line; it is dropped with a warning naming the file (the
row is rewritten when the run resumes). A damaged line anywhere else is an error naming the file and
the line: the metrics are the run's record and are never read past silently.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path


def read_rows(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.exists():
        return []
    lines = p.read_text().splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                warnings.warn(f"{p}: the last line is torn (a run killed while writing); it is dropped",
                              RuntimeWarning, stacklevel=2)
                break
            raise ValueError(f"{p}: line {i + 1} is not a JSON row; the metrics file is damaged") from None
    return rows


def curves(path: str | Path) -> dict[str, dict[str, list[float]]]:
    """``{"valid": {"step", "loss", "accuracy"}, "train": {"step", "loss"}}`` from a run's metrics file."""
    out = {"valid": {"step": [], "loss": [], "accuracy": []}, "train": {"step": [], "loss": []}}
    for row in read_rows(path):
        split = "valid" if row.get("split") == "valid" else "train"
        if "loss" not in row or "step" not in row:
            continue
        for k in out[split]:
            out[split][k].append(row.get(k, float("nan")))
    return out
