"""Can the ledger's text language models reach a validation plateau? The measurements behind the README.

D1's equal-supervision decoder (softmax, d = 64, the full budget's recipe, one seed) three ways, each run
into OUT/NAME (default runs-text-plateau/):

- ``cap``: the recipe as the ledger trains it (1350 steps on 2 MB of Shakespeare);
- ``twice``: twice the cap on the same text: how much the cap leaves on the table;
- ``small``: 100 KB of the text, half of it held out: a corpus small enough to plateau within the cap.

Each prints its stop reason, steps, final validation loss, the fall over its last 350 steps, and the training
loss at its end (a training loss far below the validation loss is memorisation). About 6 minutes on one core.

    python scripts/text_plateau.py [OUT] [--lr 1e-3] [--seed 0] [--scale 1]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from attnlab.claims import recipes
from attnlab.claims.decoding import PREFIX_TASK
from attnlab.claims.registry import Budget
from attnlab.train import train
from attnlab.train.metrics import curves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default="runs-text-plateau")
    ap.add_argument("--lr", type=float, default=1e-3, help="the ledger's pilot chose 1e-3 for this arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0, help="a fraction of every step count (a smoke test)")
    args = ap.parse_args()
    base = recipes.text("text-plateau", args.seed, Budget.get("full"), task=PREFIX_TASK, mixer="softmax",
                        mode="decoder")
    settings = {
        "cap": base,
        "twice": replace(base, steps=2 * base.steps),
        "small": replace(base, task=replace(PREFIX_TASK, max_bytes=100_000, valid_fraction=0.5)),
    }
    for name, cfg in settings.items():
        steps = max(1, round(cfg.steps * args.scale))
        cfg = replace(cfg, lr=args.lr, out=args.out, name=name, steps=steps, eval_every=min(cfg.eval_every, steps),
                      warmup=min(cfg.warmup, steps))
        summary = train(cfg, progress=False)
        c = curves(cfg.run_dir / "metrics.jsonl")
        valid = dict(zip(c["valid"]["step"], c["valid"]["loss"]))
        last = max(valid)
        back = max((s for s in valid if s <= last - 350), default=min(valid))
        end = [loss for s, loss in zip(c["train"]["step"], c["train"]["loss"]) if s > last - 100]
        print(f"{name}: {summary['stop_reason']} at step {summary['steps']}; validation {valid[last]:.3f} "
              f"(fell {valid[back] - valid[last]:+.3f} over its last {last - back} steps); "
              f"training loss over its last 100 steps {sum(end) / max(1, len(end)):.3f}")


if __name__ == "__main__":
    main()
