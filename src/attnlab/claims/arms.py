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
# a run at its step cap is credited, for claims.decide's robustness check, with the rate of improvement of
# its last EXTRAPOLATE_EVALS validation evaluations, for EXTEND times as many steps again as it ran. Loss
# curves flatten, so the straight line overstates what more training gives: the check is conservative.
# It cannot foresee a sudden late transition (an induction phase); the full budget's longer caps can.
EXTRAPOLATE_EVALS = 4
EXTEND = 1.0


def extrapolated(run: dict) -> dict | None:
    """The run's summary with its final validation loss and accuracy moved along their last trend (for a run
    at its step cap; others are returned as they are). Loss never rises, accuracy never falls, accuracy ≤ 1.
    None for a capped run without a curve to extrapolate."""
    c = run.get("valid_curve") or {}
    if run.get("stop_reason") != "step_cap":
        return run
    if len(c.get("step", [])) < 2:
        return None
    k = min(EXTRAPOLATE_EVALS, len(c["step"]) - 1)
    span = c["step"][-1] - c["step"][-1 - k]
    more = EXTEND * run["steps"]
    valid = dict(run["valid"])
    slope = (c["loss"][-1] - c["loss"][-1 - k]) / span
    valid["loss"] = max(0.0, run["valid"]["loss"] + min(slope, 0.0) * more)
    if c.get("accuracy") and run["valid"].get("accuracy") is not None:
        slope = (c["accuracy"][-1] - c["accuracy"][-1 - k]) / span
        valid["accuracy"] = min(1.0, run["valid"]["accuracy"] + max(slope, 0.0) * more)
    return {**run, "valid": valid}


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

    def reach(self, measure: Callable[[dict], float]) -> list[float] | None:
        """``measure`` of every run, with the runs at their step cap :func:`extrapolated` (the values more
        training could reach; ``measure`` must read ``r["valid"]``); None if a capped run has no curve."""
        runs = [extrapolated(r) for r in self.runs]
        return None if any(r is None for r in runs) else [measure(r) for r in runs]

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


def robust(a: Arm, b: Arm, measure: Callable[[dict], float]) -> dict:
    """The keywords of :func:`~attnlab.claims.decide.paired` that compare ``a`` with ``b`` on ``measure``
    robustly to their capped runs: ``capped`` and ``reach`` (None where a capped run cannot be extrapolated)."""
    ra, rb = a.reach(measure), b.reach(measure)
    return {"capped": any_capped(a, b), "reach": None if ra is None or rb is None else (ra, rb)}


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


def mean_curve_loss(run: dict, until: int) -> float:
    """Mean validation loss over the run's evaluations up to step ``until``: the area under its curve per
    step, lower for a model that learns faster over the same window (training speed, D3; the early-loss
    curve, I1)."""
    c = run["valid_curve"]
    vals = [x for st, x in zip(c["step"], c["loss"]) if st <= until]
    return sum(vals) / len(vals)


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
