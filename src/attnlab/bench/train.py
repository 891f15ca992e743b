"""``attnlab bench train``: one training step (forward, backward, AdamW) of the ledger's small LMs per mixer,
with a minimal nanoGPT-style peer, timed in one run.

Setting: 2 layers, ``d_model`` 64 and 128 (``n_heads = d_model / 32``), SwiGLU MLPs of ratio 4, vocabulary
256 (bytes), float32, the machine's threads, random tokens (the step's cost does not depend on them). Batches
as the ledger uses them: 64 sequences at T = 32 (MQAR), 16 at T = 128 (text), 8 at T = 512.

The peer is what a researcher would write: a nanoGPT-style decoder on
``torch.nn.functional.scaled_dot_product_attention`` (fused QKV, learned positions, pre-LayerNorm, GELU
MLP) whose MLP width is chosen so that its parameter count equals attnlab's softmax LM of the same size (both
are reported). flash-linear-attention's naive chunk forms write into their buffers in place, so autograd
cannot run through them: they have no training row (``attnlab bench ops`` times them forward).

FLOPs: the usual model count, ``6 · N · tokens`` with ``N`` the parameters outside the embedding (the tied
head included, as it is a matmul per token), plus softmax attention's ``6 · 2 · L · T · d`` per token
(``QKᵀ`` and ``AV``, forward and backward, causal halving ignored). Linear mixers are charged the same
``6 N`` only: their state updates are not counted, so their rate is a lower bound of the work done.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..tasks import IGNORE
from .ops import matmul_gflops
from .paired import MET, MISSED, against_target, interleaved, paired_ratio

MIXERS = ("softmax", "linear_attn", "retnet", "deltanet", "gated_deltanet", "mesanet")
PEER = "nanogpt_sdpa"
VOCAB = 256
LAYERS = 2
BATCH = {32: 64, 128: 16, 512: 8}


def batch_for(T: int) -> int:
    return BATCH.get(T, max(1, 4096 // T))


class _PeerBlock(nn.Module):
    def __init__(self, d: int, heads: int, hidden: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.up, self.down = nn.Linear(d, hidden, bias=False), nn.Linear(hidden, d, bias=False)
        self.heads = heads

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class NanoGPT(nn.Module):
    """The peer: a minimal decoder on ``scaled_dot_product_attention``."""

    def __init__(self, d: int, heads: int, hidden: int, max_len: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, d), nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(_PeerBlock(d, heads, hidden) for _ in range(LAYERS))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, x):
        h = self.wte(x) + self.wpe.weight[: x.shape[1]]
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.ln(h))


def _params(model: nn.Module, exclude: tuple[str, ...] = ()) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(exclude))


def build(kind: str, d_model: int, T: int) -> nn.Module:
    from ..models import LM, LMConfig

    heads = max(1, d_model // 32)
    if kind != PEER:
        return LM(LMConfig(vocab_size=VOCAB, d_model=d_model, n_layers=LAYERS, n_heads=heads, mixer=kind,
                           mlp_ratio=4))
    target = _params(build("softmax", d_model, T))
    fixed = _params(NanoGPT(d_model, heads, 1, T)) - 2 * d_model  # everything but the MLP's hidden width
    hidden = max(1, round((target - fixed) / (2 * d_model * LAYERS)))
    return NanoGPT(d_model, heads, hidden, T)


def labels_for(x: torch.Tensor, labelled: float) -> torch.Tensor:
    """Next-token labels of ``x [b, T + 1]`` with every ``round(1 / labelled)``-th position labelled, counted from
    the end (as MQAR labels its queries), the others ignored."""
    lab = x[:, 1:].clone()
    stride = max(1, round(1 / labelled))
    keep = torch.zeros(lab.shape[1], dtype=torch.bool)
    keep[torch.arange(lab.shape[1] - 1, -1, -stride)] = True
    lab[:, ~keep] = IGNORE
    return lab


def step_call(kind: str, d_model: int, T: int, seed: int = 0, labelled: float = 1.0,
              head_everywhere: bool = False) -> tuple[Callable[[], object], nn.Module]:
    """The zero-argument training step to time (forward, cross-entropy, backward, AdamW) and its model.

    attnlab's models take the trainer's loss (:func:`attnlab.train.loop.labelled_loss`: the head
    only at labelled positions), or with ``head_everywhere`` the logits of every position; the peer always
    computes every position's logits, as a minimal model does."""
    from ..checks import finite_checks
    from ..train.loop import adamw, labelled_loss

    torch.manual_seed(seed)
    model = build(kind, d_model, T)
    opt = adamw(list(model.parameters()), lr=1e-3)  # the trainer's optimizer, for the peer too: models compared
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(VOCAB, (batch_for(T), T + 1), generator=g)
    inp, lab = x[:, :-1], labels_for(x, labelled)

    def loss_of():
        if kind == PEER or head_everywhere:
            return F.cross_entropy(model(inp).reshape(-1, VOCAB), lab.reshape(-1), ignore_index=IGNORE)
        return labelled_loss(model, inp, lab)

    def call():
        with finite_checks(False):  # as the trainer runs: its loss check catches NaN, not a per-op scan
            loss = loss_of()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return loss

    return call, model


def useful_flops(kind: str, model: nn.Module, d_model: int, T: int) -> float:
    """FLOPs of one step by the model count (module docstring)."""
    n = _params(model, ("embed.", "wte.", "wpe.", "pos.")) + VOCAB * d_model  # + the tied head's matmul
    tokens = batch_for(T) * T
    attn = 12 * LAYERS * T * d_model if kind in ("softmax", PEER) else 0
    return float((6 * n + attn) * tokens)


def run_bench(mixers=MIXERS, d_models=(64, 128), Ts=(32, 128, 512), reps: int = 10,
              progress: Callable[[str], None] | None = None, labelled: float = 1.0, pytorch_ops: bool = False) -> dict:
    """Time each case; with ``labelled`` < 1 each of attnlab's models is also timed with the head at every
    position (``head_everywhere_s``), and with ``pytorch_ops`` with the compiled CPU kernels turned off
    (``pytorch_ops_s``: the delta rule, SwiGLU and the norms in PyTorch ops), in the same run.

    The models of one size are timed in interleaved rounds (:func:`attnlab.bench.paired.interleaved`), so each
    ratio is paired round by round: ``vs_softmax`` (a model's step time over attnlab's softmax LM's), and on the
    peer's row ``softmax_vs_peer``, each ``[median, low, high]`` with a 95% interval; likewise
    ``head_everywhere`` and ``pytorch_ops`` (over the model's own step)."""
    from ..ops import native

    for m in mixers:
        if m not in MIXERS:
            raise ValueError(f"mixer must be one of {', '.join(MIXERS)}; got {m!r}")
    if not 0 < labelled <= 1:
        raise ValueError(f"--labelled must be a fraction in (0, 1], got {labelled}")
    rows = []
    mm = matmul_gflops()
    for d in d_models:
        for T in Ts:
            if progress:
                progress(f"d={d} T={T}: {', '.join((PEER, *mixers))}")
            calls, models = {}, {}
            for kind in (PEER, *mixers):
                calls[kind], models[kind] = step_call(kind, d, T, labelled=labelled)
                if labelled < 1 and kind != PEER:
                    calls[(kind, "head_everywhere")] = step_call(kind, d, T, labelled=labelled, head_everywhere=True)[0]
                if pytorch_ops and kind != PEER:
                    calls[(kind, "pytorch_ops")] = _without_kernels(step_call(kind, d, T, labelled=labelled)[0])
            ts = interleaved(calls, reps, warmup=3)
            for kind in (PEER, *mixers):
                med = statistics.median(ts[kind])
                fl = useful_flops(kind, models[kind], d, T)
                row = {"model": kind, "d_model": d, "T": T, "batch": batch_for(T), "params": _params(models[kind]),
                       "median_s": med, "spread": (max(ts[kind]) - min(ts[kind])) / med,
                       "tokens_per_s": batch_for(T) * T / med, "gflops": fl / med / 1e9}
                if kind == PEER and "softmax" in ts:
                    row["softmax_vs_peer"] = _bounded(paired_ratio(ts["softmax"], ts[PEER]))
                elif "softmax" in ts:
                    row["vs_softmax"] = _bounded(paired_ratio(ts[kind], ts["softmax"]))
                for variant in ("head_everywhere", "pytorch_ops"):
                    if (kind, variant) in ts:
                        row[f"{variant}_s"] = statistics.median(ts[(kind, variant)])
                        row[variant] = _bounded(paired_ratio(ts[(kind, variant)], ts[kind]))
                rows.append(row)
    return {"matmul_gflops": mm, "setting": {"layers": LAYERS, "vocab": VOCAB, "dtype": "float32",
                                             "threads": torch.get_num_threads(), "reps": reps, "labelled": labelled,
                                             "kernels": native.engine(), "timing": "interleaved rounds"},
            "rows": rows}


def _bounded(ratio: tuple[float, float, float]) -> list:
    """``[median, low, high]`` for JSON: an unbounded end (too few rounds for an interval) is None, not Infinity."""
    return [x if math.isfinite(x) else None for x in ratio]


def _without_kernels(call: Callable[[], object]) -> Callable[[], object]:
    """``call`` with the compiled CPU kernels turned off for its duration only, so that it can share rounds with
    calls that use them."""
    from ..ops import native

    def off():
        with native.disabled():
            return call()

    return off


def _ratio(r, digits: int = 2) -> str:
    m, lo, hi = r
    return f"{m:.{digits}f}× [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and math.isfinite(lo) else \
        f"{m:.{digits}f}× (too few rounds for an interval)"


def targets(result: dict) -> list[str]:
    """The two speed targets judged on the paired ratios' 95% intervals: attnlab's softmax LM within 1.1× of the
    peer's step time, and each linear-family mixer at T = 512 no slower than attnlab's softmax LM (three decimals,
    so that an end just past a target reads as such). Judged for language models only (every position labelled):
    with fewer labels attnlab's step computes the head at those positions while the peer's computes it everywhere,
    so their ratio is not the targets'."""
    if result["setting"].get("labelled", 1.0) < 1:
        return []
    lines = []
    peer = [r for r in result["rows"] if "softmax_vs_peer" in r]
    if peer:
        lines.append("softmax LM within 1.1× of the peer: " + "; ".join(
            f"d {r['d_model']}, T {r['T']}: {_ratio(r['softmax_vs_peer'], 3)} "
            f"{against_target(r['softmax_vs_peer'], 1.1)}"
            for r in peer))
    long = [r for r in result["rows"] if r["T"] == 512 and "vs_softmax" in r and r["model"] != "softmax"]
    if long:
        lines.append("at T = 512, no slower than the softmax LM: " + "; ".join(
            f"{r['model']} d {r['d_model']}: {_ratio(r['vs_softmax'], 3)} {against_target(r['vs_softmax'], 1.0)}"
            for r in long))
    verdicts = [against_target(r["softmax_vs_peer"], 1.1) for r in peer] + \
               [against_target(r["vs_softmax"], 1.0) for r in long]
    if verdicts:
        lines.append(f"{verdicts.count(MET)} within target, {verdicts.count(MISSED)} over target, "
                     f"{len(verdicts) - verdicts.count(MET) - verdicts.count(MISSED)} undecided (the interval holds "
                     "the target).")
    return lines


def markdown(result: dict) -> str:
    s = result["setting"]
    part = s.get("labelled", 1.0) < 1
    off = any("pytorch_ops" in r for r in result["rows"])
    lines = [f"Setting: {s['layers']} layers, SwiGLU MLP ×4, vocabulary {s['vocab']}, {s['dtype']}, {s['threads']} "
             f"threads, forward + backward + AdamW per step; the models of a size timed in {s['reps']} interleaved "
             "rounds (each round runs each model once), so that their ratios are paired round by round: the median "
             f"ratio with its 95% interval (order statistics); float32 matmul rate in the same run: "
             f"**{result['matmul_gflops']:.1f} GFLOP/s**. `× softmax`: step time over attnlab's softmax LM at the "
             "same size (the peer's row: attnlab's softmax over the peer, "
             + ("whose head computes every position)." if part else "the target is ≤ 1.1×).")
             + (f" One position in {round(1 / s['labelled'])} is labelled; `head everywhere`: the step time with "
                "every position's logits over the step time with the head at labelled positions only." if part else "")
             + (" `PyTorch ops`: the step time with the compiled CPU kernels turned off (the delta rule, SwiGLU and "
                "the norms in PyTorch ops) over the step time with them." if off else ""),
             "", "| model | d_model | T | batch | params | step (ms) | spread | tokens/s | % of matmul | × softmax |"
             + (" head everywhere |" if part else "") + (" PyTorch ops |" if off else ""),
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if part else "") + ("---|" if off else "")]
    for r in result["rows"]:
        rel = (f"softmax {_ratio(r['softmax_vs_peer'])} the peer" if "softmax_vs_peer" in r else
               _ratio(r["vs_softmax"]) if "vs_softmax" in r else "")
        lines.append(f"| {r['model']} | {r['d_model']} | {r['T']} | {r['batch']} | {r['params']:,} | "
                     f"{r['median_s'] * 1e3:.1f} | {100 * r['spread']:.0f}% | {r['tokens_per_s']:,.0f} | "
                     f"{100 * r['gflops'] / result['matmul_gflops']:.0f}% | {rel} |"
                     + (f" {_ratio(r['head_everywhere'])} |" if "head_everywhere" in r else " |" if part else "")
                     + (f" {_ratio(r['pytorch_ops'])} |" if "pytorch_ops" in r else " |" if off else ""))
    goals = targets(result)
    return "\n".join(lines) + ("\n\nTargets (95% intervals of the paired ratios): " + " ".join(
        g if g.endswith(".") else g + "." for g in goals) if goals else "")


def check_sizes(d_models, Ts) -> None:
    for d in d_models:
        if d < 32 or d % 32:
            raise ValueError(f"--d-model values must be multiples of 32 (heads of 32), got {d}")
    for T in Ts:
        if T < 2:
            raise ValueError(f"--T values must be ≥ 2, got {T}")
    if math.prod(len(x) for x in (d_models, Ts)) == 0:
        raise ValueError("--d-model and --T must each list at least one value")
