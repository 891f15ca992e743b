"""``attnlab analyze``: attention statistics of pretrained models on real text, offline."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from ._common import one_line_errors, quiet_libraries, table


def _text(text_file: Path | None, corpus: str | None, max_chars: int) -> str:
    if (text_file is None) == (corpus is None):
        raise ValueError("give exactly one of --text FILE and --corpus NAME")
    if text_file is not None:
        if not text_file.exists():
            raise ValueError(f"--text: {text_file} does not exist")
        return text_file.read_text(errors="replace")[:max_chars]
    from ..tasks.text import load_bytes

    return bytes(load_bytes(corpus, max_chars).tolist()).decode("utf-8", errors="replace")


HEATMAP_TOKENS = 64  # the window the heatmaps and the HTML page show: enough tokens to read, few enough to label


def _layer_table(results: list[dict], width: int):
    """Per layer: mean entropy, sparsity and effective rank over heads, with the range over heads where
    the table still fits ``width`` columns (else means only; the ranges stay in analysis.json)."""

    keys = (("entropy", "H nats"), ("sparsity", "S"), ("eff_rank_frac", "rank/t"))
    tags = [""] if len(results) == 1 else [f" {chr(65 + i)}" for i in range(len(results))]
    ranges = 8 + len(results) * 3 * 21 <= width  # "2.696 [2.21, 3.11]" and its borders
    title = results[0]["model"] if len(results) == 1 else "; ".join(
        f"{tag.strip()} = {r['model']}" for tag, r in zip(tags, results))
    t = table("layer", *[f"{label}{tag}" for tag in tags for _, label in keys], title=escape(title),
              caption="mean over heads" + (escape(" [lowest, highest head]") if ranges
                                           else "; per-head ranges in analysis.json"))
    for li in range(max(len(r["layers"]) for r in results)):
        row = [str(li)]
        for r in results:
            for k, _ in keys:
                if li >= len(r["layers"]):
                    row.append("")
                    continue
                m = r["layers"][li][k]["mean"]
                row.append(f"{sum(m) / len(m):.3f}" + (f" [{min(m):.2f}, {max(m):.2f}]" if ranges else ""))
        t.add_row(*row)
    return t


def _pictures(hf, txt: str, heads: list[tuple[int, int]], out: Path) -> dict:
    """The first window's heatmaps of ``heads`` (PNG, labelled with its tokens) and the page that browses
    every head of that window."""
    from ..diagnostics.attention_stats import text_windows
    from ..report.attention_page import attention_page
    from ..report.heatmap import heatmap

    ids = text_windows(hf.tokenizer, txt, HEATMAP_TOKENS, HEATMAP_TOKENS)[0]
    att = [a[0].numpy() for a in hf.attentions(ids[None])]
    for li, hi in heads:
        if not 0 <= li < len(att) or not 0 <= hi < att[li].shape[0]:
            raise ValueError(f"--heads: layer {li} head {hi} out of range ({len(att)} layers, {att[0].shape[0]} heads)")
    tokens = [hf.tokenizer.decode([int(i)]) for i in ids]
    pngs = [str(heatmap(att[li][hi], f"{hf.name} layer {li} head {hi}", out / f"{hf.name}-L{li}-H{hi}.png", tokens))
            for li, hi in heads]
    page = attention_page(att, tokens, f"{hf.name}: attention over the first {len(tokens)} tokens",
                          out / f"{hf.name}-attention.html")
    return {"heatmaps": pngs, "attention_page": str(page), "heatmap_tokens": len(tokens)}


def _heads(spec: str) -> list[tuple[int, int]]:
    pairs = []
    for part in filter(None, spec.split(",")):
        try:
            li, hi = (int(x) for x in part.split(":"))
        except ValueError:
            raise ValueError(f"--heads expects layer:head pairs such as 0:1,3:2; got {part!r}") from None
        pairs.append((li, hi))
    return pairs


@one_line_errors
def analyze_cmd(
    model: str = typer.Option(..., "--model", help="minilm, smollm2, a local folder or .gguf file, or a hub id."),
    text: Path | None = typer.Option(None, "--text", help="A text file to run the model on."),
    corpus: str | None = typer.Option(None, "--corpus", help="A built-in corpus: shakespeare or stdlib."),
    max_tokens: int = typer.Option(512, "--max-tokens", help="Tokens to analyse (in windows of --window)."),
    window: int = typer.Option(128, "--window", help="Tokens per forward pass (fewer if the text is shorter)."),
    compare: str | None = typer.Option(None, "--compare", help="A second model, side by side."),
    heads: str = typer.Option("", "--heads", help="PNG heatmaps of these heads over the first 64 tokens, e.g. "
                              "0:0,5:3 (layer:head). Every head is in DIR/<model>-attention.html."),
    out: Path = typer.Option(Path("results/analyze"), "--out", help="Folder for analysis.json, heatmaps and the page."),
    as_json: bool = typer.Option(False, "--json", help="Print the analysis as JSON."),
) -> None:
    """Entropy, ℓ1/ℓ2 sparsity and rank of every layer and head (claims D2, C7 and I-claims on real weights),
    and a page to browse every head's attention over the text's first tokens."""
    quiet_libraries()
    from rich.console import Console
    from rich.progress import Progress

    from ..diagnostics.attention_stats import analyze_model
    from ..models.hf import load_hf

    if max_tokens < 2 or window < 2:
        raise ValueError("--max-tokens and --window must be at least 2")
    wanted = _heads(heads)
    txt = _text(text, corpus, max_chars=max(max_tokens, HEATMAP_TOKENS) * 8)
    console = Console(stderr=True)
    results = []
    for name in [model] + ([compare] if compare else []):
        with console.status(f"loading {escape(name)}"):
            hf = load_hf(name)
        out.mkdir(parents=True, exist_ok=True)
        with Progress(console=console, transient=True) as prog:
            task = prog.add_task(f"{escape(name)}: windows", total=None)
            res = analyze_model(hf, txt, window=window, max_tokens=max_tokens,
                                progress=lambda i, n, task=task: prog.update(task, completed=i, total=n))
        res.update(_pictures(hf, txt, wanted, out))
        results.append(res)
    data = results[0] if len(results) == 1 else {"models": results}
    (out / "analysis.json").write_text(json.dumps(data, indent=1))
    if as_json:
        typer.echo(json.dumps(data))
        return
    console = Console()
    console.print(_layer_table(results, console.width))
    for r in results:
        s = r["summary"]
        n = r["windows"]
        used = (f"{r['tokens']} tokens in {n} window{'s' * (n > 1)} of up to {r['window']}"
                + (f" (not the {r['window_requested']} of --window: no more tokens)"
                   if r["window"] < r["window_requested"] else ""))
        typer.echo(f"{r['model']} ({'causal' if r['causal'] else 'bidirectional'}), {used}:\n  mean entropy "
                   f"{s['entropy']:.3f} nats (uniform: log {r['window']} = {r['log_window']:.2f}), S {s['sparsity']:.3f}, "
                   f"effective rank {s['eff_rank_frac']:.3f}·t, numerical rank {s['num_rank_frac']:.3f}·t")
        typer.echo(f"  browse every head: {r['attention_page']}" + (f"; heatmaps: {', '.join(r['heatmaps'])}"
                                                                     if r["heatmaps"] else ""))
    typer.echo(f"→ {out / 'analysis.json'}")
