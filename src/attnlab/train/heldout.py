"""Held-out loss of a finished run: what a learning-rate pilot is chosen on, data the run is never measured on.

A pilot (:mod:`attnlab.claims.arms`) trains an arm's first seed at every rate of the grid, and that
seed's chosen run is then one of the arm's measured runs. Choosing it on the validation batches it is
measured on would let the batches' noise pick the run; so the choice reads the run's final model on
*held-out* batches instead:

- synthetic tasks (MQAR, Markov chains, positions: a fixed validation set drawn from a seed) draw a
  fresh validation set from the same distribution, seeded :data:`HELDOUT_SEED` away from the run's;
- text (one validation split fixed by the corpus) evaluates windows at other offsets of that split,
  drawn from the shifted seed: the text is shared with the measured windows, the windows are not.

The run's trainer, weights and measured numbers are untouched: this only evaluates a finished run, so it
costs one forward pass over ``eval_batches`` batches per pilot run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

# far from every seed a budget trains (0-9) and from the trainer's own offsets (+7919 for a synthetic
# validation set, 10_000 for text windows), so the held-out draw shares no seed with a measured one
HELDOUT_SEED = 50_021


def cached(run_dir: str | Path) -> float | None:
    """The held-out loss already kept in the run folder, None if there is none for :data:`HELDOUT_SEED`."""
    p = Path(run_dir) / "heldout.json"
    if not p.exists():
        return None
    saved = json.loads(p.read_text())
    return float(saved["loss"]) if saved.get("heldout_seed") == HELDOUT_SEED else None


def heldout_loss(run: dict) -> float:
    """Validation loss of a finished run's final model (``run["run_dir"]``, as the memo returns it) on
    held-out batches: a fresh draw of a synthetic task's validation set, or other windows of the text's
    validation split. Cached in the run folder (``heldout.json``), keyed by the seed offset."""
    import torch

    from .loop import evaluate, load_trained

    run_dir = Path(run["run_dir"])
    known = cached(run_dir)
    if known is not None:
        return known
    model, data, cfg = load_trained(run_dir)
    shifted = dataclasses.replace(cfg, seed=cfg.seed + HELDOUT_SEED)
    if data.valid_labels is not None:  # a synthetic validation set drawn from the seed: draw a fresh one
        data = cfg.task.build(shifted.seed)  # (text's split does not depend on the seed: its windows move)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or threads)
    try:
        with torch.no_grad():
            loss = evaluate(model, data, shifted)["loss"]
    finally:
        torch.set_num_threads(threads)
    (run_dir / "heldout.json").write_text(json.dumps({"heldout_seed": HELDOUT_SEED, "loss": loss}))
    return float(loss)
