"""``attnlab analyze``: attention statistics of pretrained models on real text, offline."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from ._common import one_line_errors


def _text(text_file: Path | None, corpus: str | None, max_chars: int) -> str:
    if (text_file is None) == (corpus is None):
        raise ValueError("give exactly one of --text FILE and --corpus NAME")
    if text_file is not None:
        if not text_file.exists():
            raise ValueError(f"--text: {text_file} does not exist")
        return text_file.read_text(errors="replace")[:max_chars]
    from ..tasks.text import load_bytes

    return bytes(load_bytes(corpus, max_chars).tolist()).decode("utf-8", errors="replace")


@one_line_errors
def analyze_cmd(
    model: str = typer.Option(..., "--model", help="minilm, smollm2, a local folder or .gguf file, or a hub id."),
    text: Path | None = typer.Option(None, "--text", help="A text file to run the model on."),
    corpus: str | None = typer.Option(None, "--corpus", help="A built-in corpus: shakespeare or stdlib."),
    max_tokens: int = typer.Option(512, "--max-tokens", help="Tokens to analyse (in windows of --window)."),
    window: int = typer.Option(128, "--window", help="Tokens per forward pass."),
    compare: str | None = typer.Option(None, "--compare", help="A second model, side by side."),
    heads: str = typer.Option("", "--heads", help="Heatmaps of these heads, e.g. 0:0,5:3 (layer:head)."),
    out: Path = typer.Option(Path("results/analyze"), "--out", help="Folder for analysis.json and heatmaps."),
    as_json: bool = typer.Option(False, "--json", help="Print the analysis as JSON."),
) -> None:
    """Entropy, ℓ1/ℓ2 sparsity and rank of every layer and head (claims D2, C7 and I-claims on real weights)."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from ..diagnostics.attention_stats import analyze_model, text_windows
    from ..models.hf import load_hf
    from ..report.heatmap import heatmap

    if max_tokens < 2 or window < 2:
        raise ValueError("--max-tokens and --window must be at least 2")
    txt = _text(text, corpus, max_chars=max_tokens * 8)
    console = Console(stderr=True)
    results = []
    for name in [model] + ([compare] if compare else []):
        with console.status(f"loading {name}"):
            hf = load_hf(name)
        out.mkdir(parents=True, exist_ok=True)
        with Progress(console=console, transient=True) as prog:
            task = prog.add_task(f"{name}: windows", total=None)
            res = analyze_model(hf, txt, window=window, max_tokens=max_tokens,
                                progress=lambda i, n, task=task: prog.update(task, completed=i, total=n))
        for spec in filter(None, heads.split(",")):
            try:
                li, hi = (int(x) for x in spec.split(":"))
            except ValueError:
                raise ValueError(f"--heads expects layer:head pairs such as 0:1,3:2; got {spec!r}") from None
            att = hf.attentions(text_windows(hf.tokenizer, txt, 64, 64)[0][None])
            if not 0 <= li < len(att) or not 0 <= hi < att[li].shape[1]:
                raise ValueError(f"--heads: layer {li} head {hi} out of range ({len(att)} layers, "
                                 f"{att[0].shape[1]} heads)")
            png = heatmap(att[li][0, hi].numpy(), f"{hf.name} layer {li} head {hi}", out / f"{hf.name}-L{li}-H{hi}.png")
            res.setdefault("heatmaps", []).append(str(png))
        results.append(res)
    data = results[0] if len(results) == 1 else {"models": results}
    (out / "analysis.json").write_text(json.dumps(data, indent=1))
    if as_json:
        typer.echo(json.dumps(data))
        return
    t = Table("layer", *[f"{r['model']} {k}" for r in results for k in ("H (nats)", "S", "eff. rank/t")])
    n_layers = max(len(r["layers"]) for r in results)
    for li in range(n_layers):
        row = [str(li)]
        for r in results:
            if li < len(r["layers"]):
                L = r["layers"][li]
                for k in ("entropy", "sparsity", "eff_rank_frac"):
                    m = L[k]["mean"]
                    row.append(f"{sum(m) / len(m):.3f} [{min(m):.2f}, {max(m):.2f}]")
            else:
                row += ["", "", ""]
        t.add_row(*(escape(str(x)) for x in row))
    Console().print(t)
    for r in results:
        s = r["summary"]
        typer.echo(f"{r['model']} ({'causal' if r['causal'] else 'bidirectional'}): mean entropy {s['entropy']:.3f} "
                   f"nats (log t = {r['log_window']:.2f}), S {s['sparsity']:.3f}, "
                   f"effective rank {s['eff_rank_frac']:.3f}·t, "
                   f"numerical rank {s['num_rank_frac']:.3f}·t → {out / 'analysis.json'}")
