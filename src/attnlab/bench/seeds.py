"""What training an arm's seeds together, as one batched model, could save at the ledger's own run shapes.

An ensemble of ``m`` members (a model with a leading member dimension, or ``torch.func.vmap`` over stacked
parameters) computes the ``m`` members' activations in one step. Its arithmetic is at least that of one model
at ``m`` times the batch, and it also carries ``m`` sets of parameters, gradients and AdamW state. So the step
of one model at ``m`` × the batch is the cheapest step such an ensemble could take. ``m`` steps at the batch,
divided by that step, bound from above what training the seeds together can save over training them one after
another on the same core.

The step is the trainer's own (:func:`attnlab.train.loop.labelled_loss`, backward, clipping, AdamW's fused
update), on one thread as the ledger's runs train, on the run's own task batches. The two steps of a kind are
timed in interleaved rounds (:func:`attnlab.bench.paired.interleaved`), so the bound is a paired ratio with a
95% interval. Where a step is overhead-bound (Python, dispatch, many small ops), the bound is near ``m``; where
it is compute-bound, near 1.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable

import torch

from .paired import interleaved, paired_ratio


def _s5_mqar(seq_len: int, pairs: int):
    def make(budget):
        from ..claims import recipes

        task = recipes.s5_task(seq_len, pairs)
        return recipes.mqar("deltanet", 0, dataclasses.replace(budget, model_scale=1), short_conv="k", task=task,
                            n_layers=1, batch_size=recipes.s5_batch(task))
    return make


def _s5_bpe(budget):
    from ..claims import recipes

    return recipes.text("s5-bpe-deltanet-k", 0, budget, task=recipes.BPE_TASK, mixer="deltanet", short_conv="k")


def _text(budget):
    from ..claims import recipes

    return recipes.text("text-softmax", 0, budget, mixer="softmax")


def _mqar(budget):
    from ..claims import recipes

    return recipes.mqar("softmax", 0, budget)


def _markov(budget):
    from ..claims import recipes

    return recipes.markov(0, budget, short_conv="k")


# the kinds of run that hold most of the full ledger's training time (docs/results-full/cost.md), each built by
# the recipe its claims use, at the full budget
KINDS: dict[str, tuple[str, Callable]] = {
    "s5-mqar-64": ("S5: one DeltaNet layer with K conv on MQAR (64 tokens, 4 pairs)", _s5_mqar(64, 4)),
    "s5-mqar-256": ("S5: one DeltaNet layer with K conv on MQAR (256 tokens, 16 pairs)", _s5_mqar(256, 16)),
    "s5-bpe": ("S5: DeltaNet LM with K conv on BPE text (vocabulary 1024)", _s5_bpe),
    "text": ("D1, D3, D4: softmax LM on bytes", _text),
    "mqar": ("I1, C7: two softmax layers on MQAR", _mqar),
    "markov": ("S4: two tied DeltaNet layers with K conv on in-context Markov chains", _markov),
}


def config_for(kind: str):
    """The full budget's config of ``kind`` (a key of :data:`KINDS`)."""
    from ..claims.registry import Budget

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    return KINDS[kind][1](Budget.get("full"))


def step_call(cfg, members: int = 1) -> tuple[Callable[[], object], int]:
    """The trainer's step for ``cfg`` at ``members`` × its batch, as a zero-argument call, and that batch's tokens.

    Each call trains on the next batch of the run's task (the first 16 batches, cycled), so that the timed steps
    see the run's own data rather than one batch learnt by heart."""
    from ..checks import finite_checks
    from ..train.loop import adamw, build_model, labelled_loss

    model, data = build_model(cfg)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = adamw([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                lr=cfg.lr, betas=tuple(cfg.betas))
    batches = [data.batch(i, cfg.batch_size * members, cfg.seed) for i in range(16)]
    state = {"i": 0}

    def call():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        with finite_checks(False):  # as the trainer runs
            loss = labelled_loss(model, x, y, data.prefix_len)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
            opt.step()
        return loss

    return call, batches[0][0].numel()


def run_config(path) -> tuple[str, object]:
    """The config of a recorded run folder (its ``config.json``: a researcher's own run, or one of the ledger's),
    as ``(name, config)``."""
    import json
    from pathlib import Path

    from ..train.config import make_config

    folder = Path(path)
    file = folder / "config.json"
    if not file.is_file():
        raise ValueError(f"--run: {folder} has no config.json (give a run folder that attnlab train or sweep wrote)")
    try:
        return folder.name, make_config(json.loads(file.read_text()))
    except json.JSONDecodeError as e:
        raise ValueError(f"--run: {file} is not valid JSON ({e.msg} at line {e.lineno})") from None


def run_bench(kinds=tuple(KINDS), members: int = 3, reps: int = 10,
              progress: Callable[[str], None] | None = None, runs=()) -> dict:
    """For each kind (and each recorded run folder in ``runs``), one step at the run's batch (``step_s``) and one
    at ``members`` × it (``batched_s``), timed in the same rounds; ``bound``: ``members`` × the first over the
    second, ``[median, low, high]`` with a 95% interval, the most that training ``members`` seeds as one batched
    model could save."""
    if members < 2:
        raise ValueError(f"--members must be at least 2 (seeds trained together), got {members}")
    cases = [(kind, config_for(kind)) for kind in kinds]  # unknown kinds fail here, before anything is timed
    cases = [(kind, KINDS[kind][0], cfg) for kind, cfg in cases]
    for path in runs:
        name, cfg = run_config(path)
        cases.append((name, f"the run at {path}", cfg))
    rows = []
    for kind, what, cfg in cases:
        if progress:
            progress(kind)
        single, tokens = step_call(cfg)
        batched, _ = step_call(cfg, members)
        ts = interleaved({"single": single, "batched": batched}, reps, warmup=3)
        ratio = paired_ratio([members * s for s in ts["single"]], ts["batched"])
        rows.append({"kind": kind, "what": what, "batch": cfg.batch_size, "tokens": tokens,
                     "step_s": statistics.median(ts["single"]), "batched_s": statistics.median(ts["batched"]),
                     "bound": [x if math.isfinite(x) else None for x in ratio]})
    return {"setting": {"members": members, "reps": reps, "threads": torch.get_num_threads(), "dtype": "float32",
                        "timing": "interleaved rounds", "budget": "full"}, "rows": rows}


def markdown(result: dict) -> str:
    s = result["setting"]
    m = s["members"]
    lines = [f"Setting: the trainer's step (forward, loss at the labelled positions, backward, clipping, AdamW) of "
             "each kind's full-budget run (or of a recorded run's config), on its task's batches, float32, "
             f"{s['threads']} thread(s); the step at the run's batch and at {m} × it timed in {s['reps']} "
             f"interleaved rounds. `bound`: {m} steps at the batch over one at {m} × the batch, the median round "
             "with its 95% interval (order statistics): the most that training "
             f"{m} seeds as one batched model could save (1: nothing; {m}: the whole step is overhead).", "",
             f"| kind | run | batch | tokens | step (ms) | at {m} × the batch (ms) | bound |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        med, lo, hi = r["bound"]
        bound = f"{med:.2f}× [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else \
            f"{med:.2f}× (too few rounds for an interval)"
        lines.append(f"| {r['kind']} | {r['what']} | {r['batch']} | {r['tokens']:,} | {r['step_s'] * 1e3:.1f} | "
                     f"{r['batched_s'] * 1e3:.1f} | {bound} |")
    return "\n".join(lines)
