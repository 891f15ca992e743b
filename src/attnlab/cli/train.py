"""``attnlab train`` and ``attnlab sweep``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from ._common import one_line_errors, table


@one_line_errors
def train_cmd(
    config: Path = typer.Argument(..., help="Config file: .yaml, .json, or .py defining `config`."),
    set_: list[str] = typer.Option([], "--set", help="Override a key: --set model.d_model=128 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's last good checkpoint."),
    out: str | None = typer.Option(None, "--out", help="Parent folder of the run folder (default: the config's)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train one model on one task; metrics to RUN/metrics.jsonl, checkpoints to RUN/ckpt-*."""
    from ..train import apply_overrides, load_file, make_config, train

    data = apply_overrides(load_file(config), list(set_))
    if out:
        data["out"] = out
    cfg = make_config(data)
    summary = train(cfg, resume=resume, progress=progress)
    import os

    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the run
        return
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        v = summary["valid"] or {}
        typer.echo(f"{cfg.name}: {summary['steps']} steps, train loss {summary['final_loss']:.4f}, valid loss "
                   f"{v.get('loss', float('nan')):.4f}, valid accuracy {v.get('accuracy', float('nan')):.4f}, "
                   f"{summary['params']:,} parameters → {cfg.run_dir}")


@one_line_errors
def sweep_cmd(
    file: Path = typer.Argument(..., help="Python file defining `configs`, a list of config dicts."),
    jobs: int | None = typer.Option(None, "--jobs", help="Parallel runs (default: one per core)."),
    out: Path | None = typer.Option(None, "--out", help="Where to write summary.csv (default: the runs' folder)."),
    ray: str | None = typer.Option(None, "--ray", help="Ray cluster address, or 'local' (needs the ray extra)."),
) -> None:
    """Run a sweep as parallel local processes; unfinished runs resume, finished ones are skipped."""
    from rich.console import Console

    from ..train.sweep import COLUMNS, run_sweep

    rows = run_sweep(file, jobs, out, echo=lambda s: typer.echo(s, err=True), ray_address=ray)
    t = table(*COLUMNS)
    for r in rows:
        t.add_row(*[escape(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c])) for c in COLUMNS])
    Console().print(t)
