"""``attnlab suite``: contract checks, MQAR, diagnostics and speed for one mixer."""

from __future__ import annotations

import json

import typer
from rich.markup import escape

from ._common import one_line_errors, table


@one_line_errors
def suite_cmd(
    mixer: str = typer.Argument(..., help="A registered mixer name (see `attnlab mixers`)."),
    imports: list[str] = typer.Option([], "--import", help="Module(s) that register your mixer: a name (found in "
                                      "the current folder too) or a path to a .py file (repeatable)."),
    options: str = typer.Option("{}", "--options", help="Mixer options as JSON, e.g. '{\"feature_map\": \"elu1\"}'."),
    steps: int = typer.Option(300, "--steps", help="MQAR training steps (for the mixer and the softmax baseline)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Run a mixer through the contract checks, MQAR training, diagnostics and a speed comparison."""
    from ..suite import run_suite
    from ..user_modules import import_user_module

    for mod in imports:
        import_user_module(mod)
    try:
        opts = json.loads(options)
    except ValueError:
        raise ValueError(f"--options must be a JSON object, got {options!r}") from None
    if not isinstance(opts, dict):
        raise ValueError(f"--options must be a JSON object, got {options!r}")
    if steps < 1:
        raise ValueError("--steps must be >= 1")
    from rich.console import Console

    with Console(stderr=True).status("attnlab suite") as status:
        res = run_suite(mixer, opts, steps, progress=lambda s: status.update(f"{mixer}: {s}"))
    if as_json:
        typer.echo(json.dumps(res))
        return
    from rich.console import Console


    t = table("check", "result", title=f"attnlab suite: {mixer}")
    for k, v in res["contract"].items():
        t.add_row(escape(str(k)), escape(str(v)))
    for m, r in res["mqar"].items():
        t.add_row(f"MQAR accuracy ({m})", f"{r['accuracy']:.3f} ({r['params']:,} parameters)")
    mine = res["mqar"][mixer]
    t.add_row("query-row sparsity S", f"{mine['query_sparsity']:.3f} (lower = more concentrated)")
    t.add_row("effective rank / t", f"{mine['effective_rank_frac']:.3f}")
    for T, r in res["speed"].items():
        lo, hi = r["ratio_range"]
        noise = "within noise" if r["within_noise"] else "outside noise"
        t.add_row(f"forward time, T={T}", f"{r['seconds'] * 1e3:.1f} ms: {r['vs_softmax']:.2f}× softmax "
                                          f"(paired range {lo:.2f}–{hi:.2f} over {r['reps']} reps, {noise})")
    Console().print(t)
