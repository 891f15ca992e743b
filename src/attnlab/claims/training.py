"""Trained runs for the claims: one trainer, memoised on disk by config and code.

A run's folder name carries the hash of its config and of attnlab's model/ops/trainer source, so a
rerun reuses finished runs and retrains exactly when something that shapes training changed.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import attnlab

RUN_ROOT = [Path("results") / "runs"]
TRAINING_CODE = ("ops", "mixers", "models", "tasks", "train", "checks.py")


def set_run_root(path: Path) -> None:
    RUN_ROOT[0] = Path(path)


def source_hash(keep: Callable[[Path], bool]) -> str:
    """SHA-256 of attnlab's source files (``.py``, and the ``.c`` of compiled kernels) whose path
    relative to the package passes ``keep``."""
    root = Path(attnlab.__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted([*root.rglob("*.py"), *root.rglob("*.c")]):
        rel = f.relative_to(root)
        if keep(rel):
            h.update(str(rel).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


@functools.cache
def code_hash() -> str:
    """The source that shapes training: a change here retrains, a change elsewhere reuses runs."""
    return source_hash(lambda rel: rel.parts[0] in TRAINING_CODE)[:10]


def trained(cfg: dict) -> dict:
    """Train ``cfg`` (or reuse its finished run); return the summary with ``run_dir`` added."""
    from ..train import make_config, train
    from ..train.sweep import finished

    cfg = copy.deepcopy(cfg)
    key = hashlib.sha256((json.dumps(cfg, sort_keys=True) + code_hash()).encode()).hexdigest()[:12]
    cfg["name"] = f"{cfg.get('name', 'run')}-{key}"
    cfg["out"] = str(RUN_ROOT[0])
    cfg.setdefault("ckpt_every", 10**9)
    tc = make_config(cfg)
    s = finished(tc) or train(tc, resume=True, progress=False)
    return {**s, "run_dir": str(tc.run_dir)}


def stats(xs: list[float]) -> dict:
    return {"mean": statistics.fmean(xs), "std": statistics.pstdev(xs) if len(xs) > 1 else 0.0,
            "min": min(xs), "max": max(xs), "values": list(xs)}


def seed_figure(title: str, ylabel: str, groups: dict[str, dict], *, paired: bool = False,
                hline: tuple[str, float] | None = None):
    """Every seed's value per group (from :func:`stats`) beside the group's mean ± sd, on a named axis.

    ``paired``: the groups share seeds and the decision compares them seed by seed, so each seed is
    drawn as one line across the groups.
    """
    from .registry import Figure

    names = list(groups)
    if paired:
        n = len(groups[names[0]]["values"])
        series = [{"label": "one seed" if s == 0 else None, "x": list(range(len(names))),
                   "y": [groups[g]["values"][s] for g in names], "style": "-o", "color": "0.6"} for s in range(n)]
    else:
        series = [{"label": "one seed", "x": [i for i, g in enumerate(names) for _ in groups[g]["values"]],
                   "y": [v for g in names for v in groups[g]["values"]], "style": "o"}]
    series.append({"label": "mean ± sd", "x": [i + 0.15 for i in range(len(names))],
                   "y": [groups[g]["mean"] for g in names], "yerr": [groups[g]["std"] for g in names], "style": "o",
                   "color": "C3"})
    if hline is not None:
        series.append({"label": hline[0], "x": [-0.3, len(names) - 0.7], "y": [hline[1], hline[1]], "style": "--"})
    return Figure(title, "", ylabel, series, xticks=names)


def fmt(s: dict, digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"
