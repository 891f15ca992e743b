"""Trained arms: a learning rate chosen from a grid, every seed trained to its plateau, curves kept.

An arm is one setting of a comparison (a mixer, a convolution placement, a mask), trained once per
seed of the budget. Its learning rate comes from :data:`LR_GRID`: a pilot trains the first seed at
every rate and keeps the one with the lowest validation loss at its plateau. Arms of one model
family may share a pilot: the pilot runs on the family's representative arms, and where they agree
on the best rate every arm of the family uses it (the pilot's numbers are kept as the evidence);
where they disagree, every arm runs its own. The chosen run of the pilot is the first seed's run,
so a pilot costs ``len(LR_GRID) − 1`` extra runs per piloted arm; that run was picked on the same
validation batches it is then measured on, which flatters the first seed of every arm alike (a
paired comparison sees the same selection on both sides; a held-out selection split would remove it).
The runs of one phase (the pilots, then every other run) are independent and go to the memo
together, which trains them in parallel processes when it has ``jobs``. Runs stop at a validation plateau
(``TrainConfig.plateau``) with the recipe's steps as a cap; an arm whose runs reach the cap before
their plateau is reported as capped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..train import RunMemo, TrainConfig
from .registry import Figure
from .seeds import stats

LR_GRID = (1e-3, 3e-3, 1e-2)


@dataclass
class Arm:
    name: str  # as the reason and the figures show it ("" reads "none": the arm without the option)
    lr: float
    pilot: dict[str, float]  # learning rate → the first seed's validation loss (empty: the family's pilot chose)
    runs: list[dict] = field(default_factory=list)  # one summary per seed, in the budget's seed order

    @property
    def label(self) -> str:
        return self.name or "none"

    def values(self, measure: Callable[[dict], float]) -> list[float]:
        return [measure(r) for r in self.runs]

    @property
    def capped(self) -> int:
        """How many of the arm's runs reached their step cap before a validation plateau."""
        return sum(r.get("stop_reason") == "step_cap" for r in self.runs)

    def record(self) -> dict:
        return {"lr": self.lr, "pilot_valid_loss": self.pilot, "capped": self.capped, "runs": len(self.runs),
                "steps": stats([float(r["steps"]) for r in self.runs])}


def any_capped(*arms: Arm) -> bool:
    """Whether a run of any of ``arms`` reached its step cap before a plateau (``decide``'s ``capped``)."""
    return any(a.capped for a in arms)


def _pilots(runs: RunMemo, makers: dict[str, Callable[[int], TrainConfig]], names: list[str],
            seed: int) -> dict[str, tuple[float, dict[str, float], dict]]:
    """For each arm in ``names``: the grid's best rate on ``seed``, every rate's validation loss, and the
    best run's summary (all pilot runs trained at once, in parallel where the memo has jobs)."""
    cfgs = [replace(makers[a](seed), lr=lr) for a in names for lr in LR_GRID]
    done = iter(runs.trained_many(cfgs))
    out = {}
    for a in names:
        trained = {lr: next(done) for lr in LR_GRID}
        best = min(LR_GRID, key=lambda lr: trained[lr]["valid"]["loss"])
        out[a] = (best, {f"{lr:g}": trained[lr]["valid"]["loss"] for lr in LR_GRID}, trained[best])
    return out


def train_arms(runs: RunMemo, makers: dict[str, Callable[[int], TrainConfig]], seeds: tuple[int, ...] | list[int],
               family: list[str] | None = None) -> dict[str, Arm]:
    """Train every arm (``name → seed → config``) over ``seeds``; ``family`` names the arms whose pilot
    may decide the rate of all (None: every arm runs its own pilot)."""
    seeds = list(seeds)
    pilots = _pilots(runs, makers, list(family or makers), seeds[0])
    rates = {p[0] for p in pilots.values()}
    if family and len(rates) > 1:  # the family disagrees: every arm finds its own rate
        pilots.update(_pilots(runs, makers, [a for a in makers if a not in pilots], seeds[0]))
    shared = rates.pop() if len(rates) == 1 else None
    lr = {a: pilots[a][0] if a in pilots else shared for a in makers}
    # every run still to train, in one batch: the first seed of arms without a pilot, then the other seeds
    todo = [(a, s) for a in makers for s in seeds if not (s == seeds[0] and a in pilots)]
    done = dict(zip(todo, runs.trained_many([replace(makers[a](s), lr=lr[a]) for a, s in todo])))
    return {a: Arm(a, lr[a], pilots[a][1] if a in pilots else {},
                   [pilots[a][2] if (s == seeds[0] and a in pilots) else done[(a, s)] for s in seeds])
            for a in makers}


def training_note(arms: dict[str, Arm]) -> str:
    """The clause a reason quotes about training: the chosen rates, and every arm that hit its step cap."""
    grid = "{" + ", ".join(f"{x:g}" for x in LR_GRID) + "}"
    rates = {a.lr for a in arms.values()}
    if len(rates) == 1:
        note = f"learning rate {rates.pop():g} (from {grid}) for every arm"
    else:
        note = f"learning rates from {grid}: " + ", ".join(f"{a.label} {a.lr:g}" for a in arms.values())
    edge = [a.label for a in arms.values() if a.pilot and a.lr in (min(LR_GRID), max(LR_GRID))]
    if edge:  # the best rate may lie outside the grid
        note += "; the pilot's best rate is at the grid's edge for " + ", ".join(edge)
    capped = [f"{a.label} {a.capped}/{len(a.runs)}" for a in arms.values() if a.capped]
    return note + ("; at the step cap before a plateau: " + ", ".join(capped) if capped
                   else "; every run stopped at its plateau")


def curve_figure(title: str, arms: dict[str, Arm], metric: str = "loss") -> Figure:
    """Every seed's validation curve per arm (one colour per arm), on steps."""
    series = []
    for i, a in enumerate(arms.values()):
        for j, r in enumerate(a.runs):
            c = r.get("valid_curve") or {"step": [], metric: []}
            series.append({"label": f"{a.label} (lr {a.lr:g})" if j == 0 else None, "x": c["step"], "y": c[metric],
                           "style": "-", "color": f"C{i % 10}"})
    return Figure(title, "step", f"validation {metric}", series)
