"""``attnlab compare`` and ``attnlab sample``: looking at finished runs."""

from __future__ import annotations

import html
import json
from pathlib import Path

import typer
from rich.markup import escape

from ._common import one_line_errors, table


@one_line_errors
def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="Run folders, or folders of runs (a sweep's out folder)."),
    metric: str = typer.Option("loss", "--metric", help="loss or accuracy."),
    out: Path | None = typer.Option(None, "--out", help="Write the curves: a .png figure or a .html page."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Compare runs: validation and training curves, final metrics, and the settings that differ."""
    from rich.console import Console

    from ..report.figures import figure_png
    from ..train.compare import compare, figure

    res = compare(list(runs), metric)
    if out is not None:
        if out.suffix == ".png":
            out.write_bytes(figure_png(figure(res)))
        elif out.suffix == ".html":
            from ..report.figures import figure_data_uri

            cell = lambda x: f"<td>{html.escape(str(x))}</td>"  # noqa: E731 (run names are the user's text)
            rows = "".join("<tr>" + "".join(cell(r[k]) for k in ("name", "steps", "valid_loss", "valid_accuracy",
                                                                  "stop_reason")) + "</tr>" for r in res["runs"])
            out.write_text(f"<!doctype html><meta charset=utf-8><title>attnlab compare</title><img src='"
                           f"{figure_data_uri(figure(res))}'><table border=1><tr><th>run</th><th>steps</th>"
                           f"<th>valid loss</th><th>valid accuracy</th><th>stop</th></tr>{rows}</table>",
                           encoding="utf-8")
        else:
            raise ValueError(f"--out must end in .png or .html, got {out.name}")
    if as_json:
        typer.echo(json.dumps(res, default=str))
        return
    t = table("run", "steps", "valid loss", "valid acc.", "stop", *res["differing"])
    for r in res["runs"]:
        num = lambda x: "—" if x is None else f"{x:.4f}"  # noqa: E731
        t.add_row(escape(r["name"]), str(r["steps"]), num(r["valid_loss"]), num(r["valid_accuracy"]),
                  escape(r["stop_reason"]), *(escape(json.dumps(r["settings"][k])) for k in res["differing"]))
    Console().print(t)
    if out is not None:
        Console(stderr=True).print(f"wrote {out}")


@one_line_errors
def sample_cmd(
    run: Path = typer.Argument(..., help="A finished run folder."),
    prompt: str = typer.Option("", "--prompt", help="Text for text runs; space-separated token ids otherwise."),
    tokens: int = typer.Option(100, "--tokens", help="How many tokens to generate."),
    temperature: float = typer.Option(0.0, "--temperature", help="0: greedy; otherwise sample at this temperature."),
    top_k: int | None = typer.Option(None, "--top-k", help="Sample among the k most likely tokens."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling."),
) -> None:
    """Continue a prompt with a trained decoder-only LM (greedy, or temperature / top-k sampling)."""
    import torch

    from ..tasks import Text
    from ..train import load_trained

    if not (run / "config.json").exists():
        raise ValueError(f"{run} is not a run folder (no config.json)")
    model, data, cfg = load_trained(run)
    tok = getattr(data, "tokenizer", None)
    is_text = isinstance(cfg.task, Text)
    if is_text and tok is not None:
        ids = tok.encode(prompt).ids
    elif is_text:
        ids = list(prompt.encode("utf-8"))
    else:
        try:
            ids = [int(x) for x in prompt.split()]
        except ValueError:
            raise ValueError(f"--prompt: {type(cfg.task).__name__} runs take space-separated token ids, "
                             f"got {prompt!r}") from None
    if not ids:
        raise ValueError("--prompt must hold at least one token")
    if max(ids) >= data.vocab_size or min(ids) < 0:
        raise ValueError(f"--prompt: token ids must lie in [0, {data.vocab_size}), got {ids}")
    g = torch.Generator().manual_seed(seed)
    out = model.generate(torch.tensor([ids]), tokens, temperature=temperature, top_k=top_k, generator=g)[0].tolist()
    if is_text and tok is not None:
        typer.echo(tok.decode(out))
    elif is_text:
        typer.echo(bytes(out).decode("utf-8", errors="replace"))
    else:
        typer.echo(" ".join(map(str, out)))
