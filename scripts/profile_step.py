"""Where a training step of the ledger's runs goes: the profiles behind docs/benchmarks.md.

    python scripts/profile_step.py OUT [--kind KIND] [--steps N] [--rows K]

Trains one of the ledger's full-budget runs (a kind of ``attnlab bench seeds``: s5-mqar-64, the default,
s5-mqar-256, s5-bpe, text, mqar or markov; seed 0, exactly ``--steps`` steps, no early stop) on one thread
under ``torch.profiler`` and prints the top operators by their own CPU time, then the run's seconds, its
FLOPs counted from below (``attnlab.train.flops``) and its rate. The profiler slows the run, so the
rate is printed from a second, unprofiled run of the same length. Shares are what to compare; the
machine's speed moves from day to day.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from attnlab.bench.seeds import KINDS, config_for
from attnlab.train import train
from attnlab.train.flops import run_flops

def config(kind: str, steps: int, out: Path, name: str):
    cfg = config_for(kind)
    return dataclasses.replace(cfg, name=name, out=str(out), steps=steps, early_stop=None, plateau=None, threads=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="a new folder for the two runs")
    p.add_argument("--kind", choices=list(KINDS), default="s5-mqar-64")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rows", type=int, default=20)
    a = p.parse_args(argv)
    if a.steps < 1:
        p.error(f"--steps must be at least 1, got {a.steps}")
    if a.out.exists():
        p.error(f"{a.out} exists: give a new folder (runs are never overwritten)")
    torch.set_num_threads(1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train(config(a.kind, a.steps, a.out, "profiled"), progress=False)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows))
    cfg = config(a.kind, a.steps, a.out, "timed")
    t0 = time.perf_counter()
    summary = train(cfg, progress=False)
    wall = time.perf_counter() - t0
    flops = run_flops(json.loads((a.out / "timed" / "config.json").read_text()), summary)["total"]
    seconds = summary["seconds"]
    print(f"{a.kind}: {a.steps} steps in {seconds:.2f} s ({1e3 * seconds / a.steps:.1f} ms a step; "
          f"{wall:.2f} s with the task's set-up), {flops / 1e9:.1f} GFLOP counted from below, "
          f"{flops / 1e9 / seconds:.1f} GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
