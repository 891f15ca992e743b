"""Trained arms: a learning rate chosen from a grid, every seed trained to its plateau, curves kept.

An arm is one setting of a comparison (a mixer, a convolution placement, a mask), trained once per
seed of the budget. Its learning rate comes from a pilot on the first seed: :data:`LR_GRID` first, and
where the best rate lies at an end of the rates tried, the next rate of :data:`LR_LADDER` beyond it,
until the best is inside the rates tried or the budget's reach ends (``Budget.lr_beyond`` rates past
each edge: none at the quick budget, two at the full one; an arm whose best is the last rate it may try
is named). The pilot
chooses on each run's **held-out** loss (:mod:`attnlab.train.heldout`: a fresh draw of a synthetic
task's validation set, other windows of a text's), not on the validation batches every arm is then
measured on, so the batches' noise does not pick the first seed's run. Arms of one model family may
share a pilot: the pilot runs on the family's representative arms, and where they agree on the best
rate every arm of the family uses it (the pilot's numbers are kept as the evidence); where they
disagree, every arm runs its own. The chosen run of the pilot is the first seed's run, so a pilot costs
the rates tried minus one extra runs per piloted arm. The runs of one phase (each round of the pilots,
then every other run) are independent and go to the memo together, which trains them in parallel
processes when it has ``jobs``. Runs stop at a validation plateau (``TrainConfig.plateau``) with the
recipe's steps as a cap; an arm whose runs reach the cap before their plateau is reported as capped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..train import RunMemo, TrainConfig
from .registry import Budget, Figure
from .seeds import stats

LR_GRID = (1e-3, 3e-3, 1e-2)
# the rates a pilot may extend to, one step at a time, when its best rate is at an end of those tried
LR_LADDER = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
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
    pilot: dict[str, float]  # learning rate → the first seed's held-out loss (empty: the family's pilot chose)
    runs: list[dict] = field(default_factory=list)  # one summary per seed, in the budget's seed order
    pilot_valid: dict[str, float] = field(default_factory=dict)  # learning rate → its validation loss
    ladder: tuple[float, ...] = LR_LADDER  # the rates its pilot could try (the budget's reach past the grid)

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

    @property
    def at_ladder_end(self) -> bool:
        """The pilot's best rate is the ladder's end: a better rate may lie beyond every rate it may try."""
        return bool(self.pilot) and self.lr in (self.ladder[0], self.ladder[-1])

    @property
    def extended(self) -> list[float]:
        """The rates the pilot tried beyond :data:`LR_GRID`."""
        return sorted(float(x) for x in self.pilot if float(x) not in LR_GRID)

    def record(self) -> dict:
        return {"lr": self.lr, "pilot_heldout_loss": self.pilot, "pilot_valid_loss": self.pilot_valid,
                "capped": self.capped, "runs": len(self.runs),
                "steps": stats([float(r["steps"]) for r in self.runs])}


def any_capped(*arms: Arm) -> bool:
    """Whether a run of any of ``arms`` reached its step cap before a plateau (``decide``'s ``capped``)."""
    return any(a.capped for a in arms)


def robust(a: Arm, b: Arm, measure: Callable[[dict], float]) -> dict:
    """The keywords of :func:`~attnlab.claims.decide.paired` that compare ``a`` with ``b`` on ``measure``
    robustly to their capped runs: ``capped`` and ``reach`` (None where a capped run cannot be extrapolated)."""
    ra, rb = a.reach(measure), b.reach(measure)
    return {"capped": any_capped(a, b), "reach": None if ra is None or rb is None else (ra, rb)}


def _ladder(beyond: int) -> tuple[float, ...]:
    """The rates a pilot may try: the grid and up to ``beyond`` rates of :data:`LR_LADDER` past each edge."""
    lo, hi = LR_LADDER.index(LR_GRID[0]), LR_LADDER.index(LR_GRID[-1])
    return LR_LADDER[max(0, lo - beyond): hi + beyond + 1]


def _beyond(tried: list[float], best: float, ladder: tuple[float, ...]) -> float | None:
    """The next rate of the ladder past ``best`` when ``best`` is an end of ``tried``; else None."""
    i = ladder.index(best)
    if best == min(tried) and i > 0:
        return ladder[i - 1]
    if best == max(tried) and i < len(ladder) - 1:
        return ladder[i + 1]
    return None


def _pilots(runs: RunMemo, makers: dict[str, Callable[[int], TrainConfig]], names: list[str],
            seed: int, ladder: tuple[float, ...]) -> dict[str, tuple[float, dict[str, float], dict, dict[str, float]]]:
    """For each arm in ``names``: the best rate on ``seed`` by held-out loss, every tried rate's held-out
    loss, the best run's summary and every tried rate's validation loss. The grid's runs train at once
    (in parallel where the memo has jobs); each extension round trains the arms still at an edge together."""
    trained: dict[str, dict[float, dict]] = {a: {} for a in names}
    heldout: dict[str, dict[float, float]] = {a: {} for a in names}
    todo = [(a, lr) for a in names for lr in LR_GRID]
    while todo:
        cfgs = [replace(makers[a](seed), lr=lr) for a, lr in todo]
        for (a, lr), run in zip(todo, runs.trained_many(cfgs, heldout=True)):
            trained[a][lr], heldout[a][lr] = run, runs.heldout_loss(run)
        todo = []
        for a in names:
            nxt = _beyond(list(heldout[a]), min(heldout[a], key=heldout[a].get), ladder)
            if nxt is not None:
                todo.append((a, nxt))
    out = {}
    for a in names:
        best = min(heldout[a], key=heldout[a].get)
        out[a] = (best, {f"{lr:g}": heldout[a][lr] for lr in sorted(heldout[a])}, trained[a][best],
                  {f"{lr:g}": trained[a][lr]["valid"]["loss"] for lr in sorted(trained[a])})
    return out


def train_arms(runs: RunMemo, makers: dict[str, Callable[[int], TrainConfig]], budget: Budget,
               family: list[str] | None = None) -> dict[str, Arm]:
    """Train every arm (``name → seed → config``) over the budget's seeds, its pilot trying up to
    ``budget.lr_beyond`` rates past the grid's edges; ``family`` names the arms whose pilot may decide the
    rate of all (None: every arm runs its own pilot)."""
    seeds, ladder = list(budget.seeds), _ladder(budget.lr_beyond)
    pilots = _pilots(runs, makers, list(family or makers), seeds[0], ladder)
    rates = {p[0] for p in pilots.values()}
    if family and len(rates) > 1:  # the family disagrees: every arm finds its own rate
        pilots.update(_pilots(runs, makers, [a for a in makers if a not in pilots], seeds[0], ladder))
    shared = rates.pop() if len(rates) == 1 else None
    lr = {a: pilots[a][0] if a in pilots else shared for a in makers}
    # every run still to train, in one batch: the first seed of arms without a pilot, then the other seeds
    todo = [(a, s) for a in makers for s in seeds if not (s == seeds[0] and a in pilots)]
    done = dict(zip(todo, runs.trained_many([replace(makers[a](s), lr=lr[a]) for a, s in todo])))
    return {a: Arm(a, lr[a], pilots[a][1] if a in pilots else {},
                   [pilots[a][2] if (s == seeds[0] and a in pilots) else done[(a, s)] for s in seeds],
                   pilots[a][3] if a in pilots else {}, ladder)
            for a in makers}


def mean_curve_loss(run: dict, until: int) -> float:
    """Mean validation loss over the run's evaluations up to step ``until``: the area under its curve per
    step, lower for a model that learns faster over the same window (training speed, D3; the early-loss
    curve, I1)."""
    c = run["valid_curve"]
    vals = [x for st, x in zip(c["step"], c["loss"]) if st <= until]
    return sum(vals) / len(vals)


def training_note(arms: dict[str, Arm]) -> str:
    """The clause a reason quotes about training: the chosen rates, how the pilot chose them, and every arm
    that hit its step cap."""
    rates = {a.lr for a in arms.values()}
    note = (f"learning rate {rates.pop():g} for every arm" if len(rates) == 1 else
            "learning rates " + ", ".join(f"{a.label} {a.lr:g}" for a in arms.values()))
    how = ["pilot over {" + ", ".join(f"{x:g}" for x in LR_GRID) + "}"]
    wider = [f"{a.label} to " + ", ".join(f"{x:g}" for x in a.extended) for a in arms.values() if a.extended]
    if wider:
        how.append("extended past its edge for " + "; ".join(wider))
    edge = [a.label for a in arms.values() if a.at_ladder_end]
    if edge:  # the best rate may lie beyond every rate the pilot may try
        how.append("the last rate it may try won for " + ", ".join(edge))
    if any(a.pilot for a in arms.values()):
        how.append("chosen on held-out batches")
    note += " (" + "; ".join(how) + ")"
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
