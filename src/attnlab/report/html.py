"""``report.html``: the verdict table, then one section per claim (claim, method, figures, numbers, verdict).

Self-contained: CSS inline, figures embedded as data URIs, no scripts, no network.
"""

from __future__ import annotations

import datetime
import html
import json
import os
from pathlib import Path

from .. import __version__
from .figures import figure_data_uri

COLORS = {"holds": "#1a7f37", "caveat": "#9a6700", "refuted": "#cf222e", "undecided": "#0969da", "pending": "#6e7781",
          "error": "#8250df"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;width:100%;font-size:14px}td,th{border-bottom:1px solid #d0d7de;padding:4px 8px;
text-align:left;vertical-align:top}.v{font-weight:600;color:#fff;border-radius:4px;padding:1px 6px;white-space:nowrap}
section{border-top:2px solid #d0d7de;margin-top:2em;padding-top:.5em}pre{background:#f6f8fa;padding:8px;overflow:auto;
font-size:12px;max-height:300px}img{max-width:100%;display:block;margin:.5em 0}.muted{color:#6e7781;font-size:13px}
"""


def _badge(v: str) -> str:
    return f'<span class="v" style="background:{COLORS.get(v, "#6e7781")}">{html.escape(v)}</span>'


def _duration(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{seconds:.0f} s" if seconds < 120 else (f"{m} min" if m < 60 else f"{m // 60} h {m % 60:02d} min")


def _stamp(iso: str) -> str:
    return iso[:16].replace("T", " ")


def _run_line(claims: list[dict]) -> str:
    """When the claims ran (they may come from several runs: cached entries keep their own times)."""
    stamps = sorted(c["finished"] for c in claims if c.get("finished"))
    total = _duration(sum(c.get("seconds") or 0.0 for c in claims))
    if not stamps:
        return f"{total} of claim time"
    return f"claims finished {_stamp(stamps[0])} – {_stamp(stamps[-1])} UTC, {total} of claim time"


def _provenance(c: dict) -> str:
    env = c.get("environment") or {}
    parts = [f"finished {_stamp(c['finished'])} UTC" if c.get("finished") else ""]
    if env.get("attnlab"):
        parts.append(f"attnlab {env['attnlab']}" + (f" ({env['commit']})" if env.get("commit") else ""))
    parts += [f"torch {env['torch']}"] if env.get("torch") else []
    parts += [f"{env['threads']} threads"] if env.get("threads") else []
    parts += ["native CPU delta kernel"] if env.get("delta_chunk_cpu") == "native" else []
    parts += [env["cuda"]] if env.get("cuda") else []
    return " · ".join(html.escape(str(p)) for p in parts if p)


def _short(x, depth=0):
    """Shrink long arrays so the numbers block stays readable (the full data is in claims.json)."""
    if isinstance(x, dict):
        return {k: _short(v, depth + 1) for k, v in x.items()}
    if isinstance(x, list) and len(x) > 12:
        return [_short(v, depth + 1) for v in x[:6]] + [f"… {len(x) - 6} more"]
    if isinstance(x, list):
        return [_short(v, depth + 1) for v in x]
    if isinstance(x, float):
        return float(f"{x:.6g}")
    return x


def _decisions(c: dict) -> str:
    """The claim's paired comparisons (``measured.decisions``) as a table; empty when it has none."""
    ds = (c.get("measured") or {}).get("decisions") or []
    if not ds:
        return ""
    f = lambda x: f"{x:+.4g}" if isinstance(x, (int, float)) else html.escape(str(x))  # noqa: E731
    rows = "".join(
        f"<tr><td>{html.escape(d['comparison'])}</td><td>{f(d['effect'])}</td><td>[{f(d['ci'][0])}, {f(d['ci'][1])}]"
        f"</td><td>{d['delta']:g}</td><td>{d['n']}</td><td>{html.escape(d['outcome'])}"
        f"{' (step cap)' if d.get('capped') else ''}</td></tr>" for d in ds)
    return ("<table><thead><tr><th>comparison (claimed direction > 0)</th><th>effect</th><th>95% CI</th><th>δ</th>"
            f"<th>seeds</th><th>outcome</th></tr></thead><tbody>{rows}</tbody></table>")


def _arm_records(x, path: tuple[str, ...] = ()):
    """``(path, record)`` for every trained arm's record (``claims.arms.Arm.record``) under ``x``, however the
    claim nests them (by arm, by regime, by layer count)."""
    if isinstance(x, dict) and "lr" in x and "pilot_valid_loss" in x:
        yield path, x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _arm_records(v, (*path, str(k)))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _arm_records(v, (*path, f"#{i + 1}"))


def _pilots(c: dict) -> str:
    """The learning-rate pilots (``measured.training``): per arm, the rate that won and the losses of every rate
    it tried, held-out (what chose) and validation; empty when the claim trains nothing."""
    recs = list(_arm_records((c.get("measured") or {}).get("training") or {}))
    if not recs:
        return ""
    rows = []
    for path, r in recs:
        held, valid = r.get("pilot_heldout_loss") or {}, r.get("pilot_valid_loss") or {}
        cells = {lr: f"{html.escape(lr)}: {held[lr]:.4f}" + (f" / {valid[lr]:.4f}" if lr in valid else "")
                 for lr in held}
        tried = ", ".join(f"<b>{x}</b>" if float(lr) == r["lr"] else x for lr, x in cells.items())
        tried = tried or "the family's pilot"
        rows.append(f"<tr><td>{html.escape(' · '.join(path))}</td><td>{r['lr']:g}</td><td>{tried}</td>"
                    f"<td>{r.get('capped', 0)}/{r.get('runs', 0)}</td></tr>")
    return ("<details><summary>learning-rate pilots</summary><table><thead><tr><th>arm</th><th>rate</th><th>rates "
            "tried: held-out / validation loss of the first seed (the winner in bold)</th><th>at step cap</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></details>")


def render_report(claims: list[dict], budget: str = "") -> str:
    counts = {}
    for c in claims:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    rows = "".join(
        f'<tr><td><a href="#{c["id"]}">{c["id"]}</a></td><td>{_badge(c["verdict"])}</td>'
        f'<td>{html.escape(c["statement"])}</td><td>{html.escape(c["reason"])}</td></tr>' for c in claims)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>attnlab claim ledger</title>",
        f"<style>{CSS}</style></head><body><h1>attnlab: the claim ledger</h1>",
        f"<p class='muted'>attnlab {__version__} · budget <b>{html.escape(budget)}</b> · "
        f"{html.escape(_run_line(claims))} · report built "
        f"{datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M')} UTC · "
        f"{summary}</p>",
        "<h2>Verdicts</h2><table id='verdicts'><thead><tr><th>ID</th><th>verdict</th><th>claim</th><th>reason "
        "(measured)</th></tr></thead><tbody>", rows, "</tbody></table>",
    ]
    for c in claims:
        figs = "".join(f'<img alt="{html.escape(f.get("title", "figure"))}" src="{figure_data_uri(f)}">'
                       for f in c.get("figures", []))
        numbers = json.dumps(_short(c.get("measured", {})), indent=1, ensure_ascii=False)
        where = _provenance(c)
        parts.append(
            f'<section id="{c["id"]}"><h2>{c["id"]} {_badge(c["verdict"])}</h2>'
            f'<p><b>Claim.</b> {html.escape(c["statement"])} <span class="muted">(post {html.escape(c["source"])})'
            f'</span></p><p><b>Method.</b> {html.escape(c.get("method") or "—")}</p>'
            f'<p><b>Decision rule (fixed before the run).</b> {html.escape(c.get("tolerance") or "—")}</p>'
            + (f'<p><b>Why this design.</b> {html.escape(c["why"])}</p>' if c.get("why") else "") +
            f'{_decisions(c)}{figs}{_pilots(c)}<p><b>Verdict.</b> {_badge(c["verdict"])} {html.escape(c["reason"])}</p>'
            f'<p class="muted">seeds {c.get("seeds") or "—"} · {c.get("seconds", 0):.1f} s'
            f'{" · " + where if where else ""}</p>'
            f"<details><summary>numbers</summary><pre>{html.escape(numbers)}</pre></details></section>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(claims: list[dict], path: Path, budget: str = "") -> Path:
    path = Path(path)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_report(claims, budget), encoding="utf-8")
    os.replace(tmp, path)
    return path
