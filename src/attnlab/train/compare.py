"""``attnlab compare``: several runs side by side: their curves, final metrics, and the settings that differ."""

from __future__ import annotations

import json
from pathlib import Path

from .metrics import curves
from .ownership import differences


def expand(paths: list[str | Path]) -> list[Path]:
    """Run folders (holding ``config.json``); a folder of runs (a sweep's ``out``) expands to its runs."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise ValueError(f"{p} is not a folder (a run folder or a folder of runs)")
        if (p / "config.json").exists():
            runs.append(p)
            continue
        inner = sorted(q for q in p.iterdir() if (q / "config.json").exists())
        if not inner:
            raise ValueError(f"{p} holds no run (no config.json in it or in its subfolders)")
        runs += inner
    return runs


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def compare(paths: list[str | Path], metric: str = "loss") -> dict:
    """Curves, final numbers and differing settings of the runs under ``paths``."""
    if metric not in ("loss", "accuracy"):
        raise ValueError(f"metric must be 'loss' or 'accuracy', got {metric!r}")
    runs = expand(paths)
    configs = [json.loads((r / "config.json").read_text()) for r in runs]
    flat = [_flat(c) for c in configs]
    keys = sorted({k for f in flat for k in f
                   if k not in ("out", "name") and len({json.dumps(g.get(k)) for g in flat}) > 1})
    rows = []
    for r, f in zip(runs, flat):
        c = curves(r / "metrics.jsonl")
        summary = json.loads((r / "summary.json").read_text()) if (r / "summary.json").exists() else {}
        valid = summary.get("valid") or {}
        steps = summary.get("steps") or (c["train"]["step"][-1] if c["train"]["step"] else 0)
        rows.append({"run": str(r), "name": f.get("name", r.name), "steps": steps,
                     "valid_loss": valid.get("loss"), "valid_accuracy": valid.get("accuracy"),
                     "stop_reason": summary.get("stop_reason", "unfinished"),
                     "settings": {k: f.get(k) for k in keys}, "curves": c})
    return {"metric": metric, "differing": keys, "runs": rows,
            "pairwise": [differences(configs[0], c) for c in configs[1:]]}


def figure(result: dict) -> dict:
    """The validation (solid) and training (dotted) curves of every run, as a report figure dict."""
    m = result["metric"]
    series = []
    for i, r in enumerate(result["runs"]):
        v, t = r["curves"]["valid"], r["curves"]["train"]
        series.append({"label": f"{r['name']} (valid)", "x": v["step"], "y": v[m], "style": "-", "color": f"C{i % 10}"})
        if m == "loss":
            series.append({"label": None, "x": t["step"], "y": t["loss"], "style": ":", "color": f"C{i % 10}"})
    return {"title": f"{m}: validation (solid), training (dotted)", "xlabel": "step", "ylabel": m, "series": series}
