"""How long a recorded ledger's training would take on this machine now, from a sample of its runs trained again.

``cost.md`` sums the seconds each run recorded as it trained. A full ledger trains over hours, often over
several sessions, on days when this shared machine runs at different speeds and sometimes beside other
work: its sum says what those sittings took, not what the same runs take on the machine as it is. Training
every run again takes hours; training a sample of them estimates the ratio of today's seconds to the
recorded ones, with an interval.

The sample is drawn with probability proportional to each run's recorded seconds, with replacement. A draw's
ratio ``now / recorded`` then has expectation ``Σ now / Σ recorded`` over the whole ledger (each run weighs
by its share of the recorded time), so the mean of the draws estimates that ratio without bias and its 95%
interval is Student's t over the draws. The ledger's recorded CPU time and its schedule on c CPUs
(``cost.md``) are scaled by it, which assumes that the machine's change of speed applies to every run alike.

The sampled runs train as the ledger's do (one thread each, ``jobs`` processes side by side), from their
recorded configs, into a temporary memo: the ledger's own runs are never touched. With the training code
unchanged a run takes the same steps again (on one CPU a run is a pure function of its config); each draw
says whether it did, and the result whether the code is the one that recorded the ledger.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from scipy.stats import t as student_t

LEVEL = 0.95


def draw(runs: list[dict], n: int, seed: int = 0) -> list[dict]:
    """``n`` of the costed ``runs`` (``{"claim", "run", "seconds"}``), drawn with replacement with probability
    proportional to their seconds."""
    weighed = [r for r in runs if r["seconds"] > 0]
    if not weighed:
        raise ValueError("the ledger has no trained run with recorded seconds to draw from")
    return random.Random(seed).choices(weighed, weights=[r["seconds"] for r in weighed], k=n)


def mean_interval(ratios: list[float], level: float = LEVEL) -> tuple[float, float, float]:
    """The mean of ``ratios`` and its Student t ``level`` interval."""
    if len(ratios) < 2:
        raise ValueError(f"an interval needs at least 2 draws, got {len(ratios)}")
    m, s = statistics.fmean(ratios), statistics.stdev(ratios)
    half = student_t.ppf(0.5 + level / 2, len(ratios) - 1) * s / math.sqrt(len(ratios))
    return m, m - half, m + half


def _recorded(out: Path, name: str) -> tuple[dict, dict]:
    """The config a memoised run was asked for (its folder's name less the memo's key) and its summary."""
    folder = out / "runs" / name
    try:
        config, summary = (json.loads((folder / f).read_text()) for f in ("config.json", "summary.json"))
    except FileNotFoundError:
        raise ValueError(f"the ledger's run memo {out / 'runs'} does not hold {name}: retiming trains each drawn run "
                         "again from its recorded config") from None
    asked, _, key = name.rpartition("-")
    if asked and len(key) == 12 and config.get("name") == name:
        config = {**config, "name": asked}  # the memo names a run <name>-<key>: resolving it again adds the key
    return config, summary


def retime(out: Path, sample: int = 12, jobs: int = 2, seed: int = 0,
           progress: Callable[[str], None] | None = None) -> dict:
    """Train ``sample`` draws of the ledger at ``out`` again (distinct runs once) in ``jobs`` processes and scale its
    recorded cost by the mean ratio of their seconds now to their recorded seconds."""
    from ..claims.cost import ledger_cost
    from ..train.memo import RunMemo
    from .ops import core_matmul_gflops

    out = Path(out)
    if sample < 2:
        raise ValueError(f"--sample must be at least 2 (an interval needs two draws), got {sample}")
    if jobs < 1:
        raise ValueError(f"--jobs must be a positive number of processes, got {jobs}")
    if not (out / "claims.json").is_file():
        raise ValueError(f"{out} holds no ledger (no claims.json): give the --out folder of a reproduce")
    cost = ledger_cost(out)
    draws = draw(cost["runs"], sample, seed)
    names = list(dict.fromkeys(d["run"] for d in draws))
    recorded = {name: _recorded(out, name) for name in names}
    rate = core_matmul_gflops()
    with tempfile.TemporaryDirectory(prefix="attnlab-retime-") as tmp, RunMemo(tmp, jobs=jobs) as memo:
        finished = []

        def on_run(name: str) -> None:
            finished.append(name)
            if progress:
                progress(f"{len(finished)}/{len(names)} trained again: {name}")

        summaries = memo.trained_many([recorded[name][0] for name in names], on_run=on_run)
    now = {name: s for name, s in zip(names, summaries)}
    same_code = all(Path(s["run_dir"]).name == name for name, s in now.items())  # the memo's key covers the code
    rows = []
    for d in draws:
        before, after = recorded[d["run"]][1], now[d["run"]]
        rows.append({"claim": d["claim"], "run": d["run"], "recorded_s": d["seconds"], "now_s": after["seconds"],
                     "ratio": after["seconds"] / d["seconds"], "same_steps": after["steps"] == before["steps"]})
    ratio = mean_interval([r["ratio"] for r in rows])
    total = cost["total"]
    return {"ledger": str(out), "sample": sample, "seed": seed, "jobs": jobs, "distinct_runs": len(names),
            "same_code": same_code, "matmul_gflops_now": rate, "matmul_gflops_recorded": cost["matmul_gflops"],
            "draws": rows, "ratio": list(ratio), "recorded_cpu_seconds": total["cpu_seconds"],
            "cpu_seconds": [total["cpu_seconds"] * x for x in ratio],
            "wall_seconds": {str(c): [total["wall_seconds"][c] * x for x in ratio] for c in cost["cpus"]}}


def _hm(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min"


def markdown(result: dict) -> str:
    r, lo, hi = result["ratio"]
    same = sum(d["same_steps"] for d in result["draws"])
    recorded = result["matmul_gflops_recorded"]
    lines = [f"{result['sample']} draws ({result['distinct_runs']} distinct runs) of the ledger at "
             f"`{result['ledger']}`, drawn with probability proportional to their recorded seconds (seed "
             f"{result['seed']}) and trained again, {result['jobs']} at a time, one thread each; one core's float32 "
             f"matmul rate now **{result['matmul_gflops_now']:.1f} GFLOP/s**"
             + (f" (the ledger's sessions: median {recorded:.1f})" if recorded else "") + ". "
             + ("The training code is the one that recorded the ledger" if result["same_code"] else
                "The training code has changed since the ledger was recorded")
             + f"; {same} of {len(result['draws'])} draws took the same steps again.", "",
             "| claim | run | recorded (s) | now (s) | now / recorded |", "|---|---|---|---|---|"]
    for d in result["draws"]:
        lines.append(f"| {d['claim']} | {d['run']} | {d['recorded_s']:.1f} | {d['now_s']:.1f} | {d['ratio']:.2f} |")
    walls = "; ".join(f"on {c} CPU{'s' if c != '1' else ''}: {_hm(w[0])} [{_hm(w[1])}, {_hm(w[2])}]"
                      for c, w in result["wall_seconds"].items())
    cpu = result["cpu_seconds"]
    lines += ["", f"Now over recorded: **{r:.2f}× [{lo:.2f}, {hi:.2f}]** (mean of the draws, 95% t interval). The "
              f"ledger's {result['recorded_cpu_seconds'] / 60:.0f} recorded CPU-minutes of training would take "
              f"{cpu[0] / 60:.0f} [{cpu[1] / 60:.0f}, {cpu[2] / 60:.0f}] now; its schedule {walls}."]
    return "\n".join(lines)
