"""What a ledger costs: the CPU time of its trained runs, and how long it would take on c CPUs.

``reproduce`` records every batch of trained runs it hands to the memo (``phases.jsonl`` beside
``claims.json``, :class:`~attnlab.claims.runner.ReportingMemo`): the runs of a batch are independent, the
next batch of the same claim waits for it (a pilot's rounds, then every seed). Each run trains on one thread,
and its ``summary.json`` keeps the seconds it took. A claim's row is its time alone on c CPUs: its own work
outside training plus, for each batch, the time c workers take to train that batch's runs (longest first
onto the least loaded worker: within 4/3 of the best schedule). The ledger's total is the schedule
``reproduce --jobs c`` runs (:mod:`attnlab.claims.runner`): the trained claims side by side, each batch
queued on the shared workers as its claim's previous batch ends, plus every claim's own work (counted one
after another, an upper bound). A run that an earlier batch trained (one arm shared by two claims) costs
nothing the second time. The seconds are this machine's, measured as the runs trained (beside each other,
``--jobs`` at a time): a faster core scales every number alike.
"""

from __future__ import annotations

import heapq
import json
from pathlib import Path

from .runner import PHASES, load_cache

CPUS = (1, 2, 8, 32, 128)


def schedule(seconds: list[float], cpus: int) -> float:
    """Wall time of independent jobs on ``cpus`` workers, longest first onto the least loaded worker."""
    if cpus < 1:
        raise ValueError(f"cpus must be ≥ 1, got {cpus}")
    load = [0.0] * min(cpus, max(1, len(seconds)))
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(load, load[0] + s)
    return max(load)


def side_by_side(chains: list[list[list[float]]], cpus: int) -> float:
    """Wall time of claims run side by side on ``cpus`` shared workers: each claim a chain of batches of runs (in
    seconds), a batch queued (first in, first out) when the claim's previous batch has finished."""
    if cpus < 1:
        raise ValueError(f"cpus must be ≥ 1, got {cpus}")
    queue: list[tuple[int, float, int]] = []  # (order queued, seconds, claim)
    nxt, left, order = [0] * len(chains), [0] * len(chains), 0

    def release(c: int) -> None:
        nonlocal order
        while nxt[c] < len(chains[c]) and not chains[c][nxt[c]]:
            nxt[c] += 1  # an empty batch waits for nothing
        if nxt[c] < len(chains[c]):
            for s in chains[c][nxt[c]]:
                queue.append((order, s, c))
                order += 1
            left[c] = len(chains[c][nxt[c]])
            nxt[c] += 1

    for c in range(len(chains)):
        release(c)
    running: list[tuple[float, int]] = []  # (end, claim)
    now = 0.0
    while queue or running:
        while queue and len(running) < cpus:
            _, s, c = queue.pop(0)
            heapq.heappush(running, (now + s, c))
        now, c = heapq.heappop(running)
        left[c] -= 1
        if left[c] == 0:
            release(c)
    return now


def phases_by_claim(out: Path) -> dict[str, list[dict]]:
    """Each claim's batches of runs from its latest ``reproduce`` (earlier sessions' lines are superseded)."""
    p = Path(out) / PHASES
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist: the ledger in {out} was run before reproduce recorded its "
                                "batches of runs; rerun it (finished runs are reused) to cost it")
    by: dict[str, dict[str, list[dict]]] = {}
    for line in p.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            by.setdefault(row["claim"], {}).setdefault(row["session"], []).append(row)
    return {cid: rows[list(rows)[-1]] for cid, rows in by.items()}


def ledger_cost(out: Path, cpus: tuple[int, ...] = CPUS) -> dict:
    """Per claim and in total: trained runs, batches, CPU seconds of training, the claim's own seconds outside
    training, and the wall seconds on each number of ``cpus``."""
    out = Path(out)
    claims = load_cache(out)
    phases = phases_by_claim(out)
    seen: set[str] = set()
    rows, chains = [], []
    for cid, c in claims.items():
        own = float(c.get("seconds") or 0.0)
        batches = []
        for ph in phases.get(cid, []):
            new = [r for r in ph["runs"] if r not in seen]
            seen.update(new)
            batches.append([_run_seconds(out, r) for r in new])
            own -= ph["seconds"]
        own = max(0.0, own)
        chains.append(batches)
        rows.append({"claim": cid, "runs": sum(map(len, batches)), "batches": len(batches),
                     "cpu_seconds": sum(map(sum, batches)), "own_seconds": own,
                     "wall_seconds": {n: own + sum(schedule(b, n) for b in batches if b) for n in cpus}})
    total = {"claim": "all", "runs": sum(r["runs"] for r in rows), "batches": sum(r["batches"] for r in rows),
             "cpu_seconds": sum(r["cpu_seconds"] for r in rows), "own_seconds": sum(r["own_seconds"] for r in rows),
             "wall_seconds": {n: sum(r["own_seconds"] for r in rows) + side_by_side(chains, n) for n in cpus},
             "wall_seconds_one_by_one": {n: sum(r["wall_seconds"][n] for r in rows) for n in cpus}}
    return {"claims": rows, "total": total, "cpus": list(cpus)}


def _run_seconds(out: Path, name: str) -> float:
    p = out / "runs" / name / "summary.json"
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist: phases.jsonl names a run the memo does not hold")
    return float(json.loads(p.read_text())["seconds"])


def cost_markdown(cost: dict, budget: str) -> str:
    """The cost as a table: the trained claims, then the ledger, minutes throughout."""
    m = lambda s: f"{s / 60:.1f}"  # noqa: E731
    head = ("| claim | trained runs | batches | CPU min of training | min outside training | "
            + " | ".join(f"min on {n} CPU{'s' * (n > 1)}" for n in cost["cpus"]) + " |")
    lines = [head, "|" + "---|" * (5 + len(cost["cpus"]))]
    for r in [*[r for r in cost["claims"] if r["runs"]], cost["total"]]:
        bold = (lambda x: f"**{x}**") if r["claim"] == "all" else str  # noqa: E731
        lines.append(f"| {bold(r['claim'])} | {r['runs']} | {r['batches']} | {m(r['cpu_seconds'])} | "
                     f"{m(r['own_seconds'])} | " + " | ".join(bold(m(r["wall_seconds"][n])) for n in cost["cpus"])
                     + " |")
    t = cost["total"]
    return (f"_{budget} budget: {t['runs']} trained runs in {t['batches']} batches, "
            f"{t['cpu_seconds'] / 3600:.2f} CPU-hours of training; the untrained claims and each claim's work "
            f"outside training run on one machine ({m(t['own_seconds'])} min). A claim's row is its time alone; "
            "the ledger's runs its trained claims side by side on the shared workers (`reproduce --jobs`), so its "
            "total is less than the sum of the rows._\n\n" + "\n".join(lines) + "\n")
