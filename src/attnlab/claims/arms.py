"""Trained arms: a learning rate chosen from a grid, every seed trained to its plateau, curves kept.

An arm is one setting of a comparison (a mixer, a convolution placement, a mask), trained once per
seed of the budget. Its learning rate comes from :data:`LR_GRID`: a pilot trains the first seed at
every rate and keeps the one with the lowest validation loss at its plateau. Arms of one model
family may share a pilot: the pilot runs on the family's representative arms, and where they agree
on the best rate every arm of the family uses it (the pilot's numbers are kept as the evidence);
where they disagree, every arm runs its own. The chosen run of the pilot is the first seed's run,
so a pilot costs ``len(LR_GRID) − 1`` extra runs per piloted arm. Runs stop at a validation plateau
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


def _pilot(runs: RunMemo, make: Callable[[int], TrainConfig], seed: int) -> tuple[float, dict[str, float], dict]:
    trained = {lr: runs.trained(replace(make(seed), lr=lr)) for lr in LR_GRID}
    best = min(LR_GRID, key=lambda lr: trained[lr]["valid"]["loss"])
    return best, {f"{lr:g}": trained[lr]["valid"]["loss"] for lr in LR_GRID}, trained[best]


def train_arms(runs: RunMemo, makers: dict[str, Callable[[int], TrainConfig]], seeds: tuple[int, ...] | list[int],
               family: list[str] | None = None) -> dict[str, Arm]:
    """Train every arm (``name → seed → config``) over ``seeds``; ``family`` names the arms whose pilot
    may decide the rate of all (None: every arm runs its own pilot)."""
    seeds = list(seeds)
    pilots: dict[str, tuple[float, dict[str, float], dict]] = {}
    shared = None
    if family:
        pilots = {a: _pilot(runs, makers[a], seeds[0]) for a in family}
        rates = {p[0] for p in pilots.values()}
        shared = rates.pop() if len(rates) == 1 else None
    out = {}
    for name, make in makers.items():
        if name in pilots:
            lr, pilot, first = pilots[name]
        elif shared is not None:
            lr, pilot = shared, {}
            first = runs.trained(replace(make(seeds[0]), lr=lr))
        else:
            lr, pilot, first = _pilot(runs, make, seeds[0])
        out[name] = Arm(name, lr, pilot, [first] + [runs.trained(replace(make(s), lr=lr)) for s in seeds[1:]])
    return out


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
