"""Summaries over the budget's seeds: per-arm statistics, their text, and a seed-by-seed figure."""

from __future__ import annotations

import statistics


def vs(value: float, bound: float, spec: str = ".3g") -> str:
    """``"0.074 < 0.15"``: a measured number against its rule's bound, the sign computed (what a reason quotes
    so that the verdict's deciding comparison is on the page)."""
    sign = "<" if value < bound else (">" if value > bound else "=")
    return f"{value:{spec}} {sign} {bound:{spec}}"


def within(value: float, lo: float, hi: float, spec: str = "+.3f") -> str:
    """``"-0.487 in [-0.6, -0.4]"`` or ``"… outside …"``, computed."""
    return f"{value:{spec}} {'in' if lo <= value <= hi else 'outside'} [{lo:g}, {hi:g}]"


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
