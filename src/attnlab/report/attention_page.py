"""A self-contained HTML page to browse every head's attention over one window of tokens.

``attnlab analyze`` writes one per model: pick a layer and a head, hover a cell to read the query
token, the key token and the weight. The page needs no network and no server. Weights are stored as
one byte each on a log scale from :data:`FLOOR` to 1 (steps of 3.7 %), which keeps a 30-layer model's
page near a megabyte; the page says so beside the values it shows.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np

from .heatmap import FLOOR, token_label

LEVELS = 255  # byte 0 marks a weight of exactly 0 (a masked entry); 1…255 span FLOOR…1 on a log scale


def encode(weights: np.ndarray) -> str:
    """``weights`` (any shape, values in [0, 1]) as base64 bytes: 0 for exactly 0, else the log-scale level."""
    w = np.asarray(weights, dtype=float)
    lv = np.clip(np.log10(np.maximum(w, FLOOR)) / -math.log10(FLOOR) + 1.0, 0.0, 1.0)
    b = np.where(w > 0, 1 + np.rint(lv * (LEVELS - 1)), 0).astype(np.uint8)
    return base64.b64encode(b.tobytes()).decode()


def decode(data: str, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`encode` (to its resolution): what the page's script computes."""
    b = np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(shape).astype(float)
    return np.where(b > 0, 10.0 ** ((b - 1) / (LEVELS - 1) * -math.log10(FLOOR) + math.log10(FLOOR)), 0.0)


_SCRIPT = """
const D = JSON.parse(document.getElementById('data').textContent);
const raw = Uint8Array.from(atob(D.weights), c => c.charCodeAt(0));
const T = D.tokens.length, H = D.heads, L = D.layers, LOGF = Math.log10(D.floor);
const cv = document.getElementById('cv'), ctx = cv.getContext('2d'), info = document.getElementById('info');
const ls = document.getElementById('layer'), hs = document.getElementById('head');
for (let i = 0; i < L; i++) ls.add(new Option('layer ' + i, i));
for (let i = 0; i < H; i++) hs.add(new Option('head ' + i, i));
const cell = Math.max(4, Math.floor(640 / T));
cv.width = cv.height = cell * T;
function level(l, h, q, k) { return raw[((l * H + h) * T + q) * T + k]; }
function weight(b) { return b === 0 ? 0 : Math.pow(10, (b - 1) / 254 * -LOGF + LOGF); }
function colour(b) {  // viridis at five stops, interpolated
  if (b === 0) return 'rgb(255,255,255)';
  const s = [[68,1,84],[59,82,139],[33,145,140],[94,201,98],[253,231,37]], x = (b - 1) / 254 * 4;
  const i = Math.min(3, Math.floor(x)), f = x - i, c = s[i].map((v, j) => Math.round(v + f * (s[i + 1][j] - v)));
  return 'rgb(' + c.join(',') + ')';
}
function draw() {
  const l = +ls.value, h = +hs.value;
  for (let q = 0; q < T; q++) for (let k = 0; k < T; k++) {
    ctx.fillStyle = colour(level(l, h, q, k)); ctx.fillRect(k * cell, q * cell, cell, cell);
  }
}
cv.onmousemove = e => {
  const r = cv.getBoundingClientRect();
  const k = Math.floor((e.clientX - r.left) / cell), q = Math.floor((e.clientY - r.top) / cell);
  if (q < 0 || k < 0 || q >= T || k >= T) return;
  const w = weight(level(+ls.value, +hs.value, q, k));
  const shown = w === 0 ? '0 (masked)' : (w <= D.floor ? '≤ ' + D.floor : '≈ ' + w.toPrecision(3));
  info.textContent = 'query ' + q + ' ' + JSON.stringify(D.tokens[q]) + '  →  key ' + k + ' ' +
    JSON.stringify(D.tokens[k]) + ':  weight ' + shown;
};
ls.onchange = hs.onchange = draw;
draw();
"""


def attention_page(attentions: list[np.ndarray], tokens: list[str], title: str, path: Path) -> Path:
    """Write the page for ``attentions`` (one ``[heads, t, t]`` array per layer) over ``tokens`` to ``path``."""
    a = np.stack([np.asarray(x, dtype=float) for x in attentions])  # [layers, heads, t, t]
    if a.ndim != 4 or a.shape[2] != a.shape[3] or a.shape[2] != len(tokens):
        raise ValueError(f"attentions must be [heads, t, t] per layer with t = {len(tokens)} tokens, "
                         f"got {tuple(a.shape)}")
    data = {"weights": encode(a), "tokens": tokens, "layers": a.shape[0], "heads": a.shape[1], "floor": FLOOR}
    payload = json.dumps(data).replace("</", "<\\/")  # a token "</script>" must not end the block
    labels = " ".join(f"<span title='{i}'>{html.escape(token_label(t, 16))}</span>" for i, t in enumerate(tokens))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} canvas{{image-rendering:pixelated;border:1px solid #ccc}}
#info{{font-family:monospace;min-height:1.4em;margin:.5em 0}} .toks span{{background:#eef;margin:1px;padding:0 2px}}
</style></head><body><h2>{html.escape(title)}</h2>
<p>Rows are queries, columns keys; colour is the attention weight on a log scale from {FLOOR:g} (dark) to 1
(yellow); white cells are masked (weight 0). Weights are stored to about 4 % (one byte on a log scale).</p>
<select id="layer"></select> <select id="head"></select><div id="info">hover a cell</div>
<canvas id="cv"></canvas><p class="toks">{labels}</p>
<script type="application/json" id="data">{payload}</script>
<script>{_SCRIPT}</script></body></html>"""
    Path(path).write_text(page)
    return Path(path)
