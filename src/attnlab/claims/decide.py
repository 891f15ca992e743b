"""Paired comparisons of trained arms over seeds: effect, 95% confidence interval, minimum effect, outcome.

Every trained claim compares arms that share their seeds (the same data and initialisation seed in
each arm), so each seed gives one paired difference. A comparison is pre-registered in the
experiment's module, before any run: its name, the direction the claim predicts, and the minimum
effect ``delta`` that matters, in the units of the measurement. :func:`paired` then returns

- ``effect``: the mean paired difference, signed so that the claimed direction is positive;
- ``ci``: its 95% interval from Student's t with ``n − 1`` degrees of freedom (with 3–5 seeds a
  bootstrap interval is too narrow to trust: it cannot be wider than the seeds' own range);
- ``outcome``: ``supported`` when the interval excludes 0 on the claimed side and the estimate
  reaches ``delta``; ``contradicted`` when the whole interval lies below ``delta`` (the effect, if
  any, is too small or opposite); ``unresolved`` otherwise: these seeds cannot decide.

An arm whose runs reached their step cap before a validation plateau (``capped``) was still learning:
its final numbers understate it. Where the caller can say what the capped runs would reach if trained
on (``reach``: each arm's values with every capped run extrapolated, :meth:`~attnlab.claims.arms.Arm.reach`),
the comparison is decided on every combination of reached and final values of the two arms, and an
outcome stands only if all of them agree: more training of either arm, in either direction, cannot
overturn it. A measurement that is not one arm's own value (a ratio of two arms, an arm against a fixed
bound) gives its combinations itself (``alternatives``: every pair of value lists more training could
produce); the rule is the same. Without either, a capped comparison is ``unresolved`` whatever its interval.

A claim of the form "at least as good" is a non-inferiority comparison (:func:`noninferior`): it is
``supported`` when the whole interval lies above ``−delta`` (any loss is smaller than the margin),
``contradicted`` when it lies entirely below ``−delta``, ``unresolved`` otherwise.

:func:`verdict_of` turns outcomes into the ledger's verdict words: ``holds`` and ``refuted`` need
supported and contradicted comparisons; anything the evidence cannot decide is ``undecided``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

from scipy import stats as sps

SUPPORTED, CONTRADICTED, UNRESOLVED = "supported", "contradicted", "unresolved"
LEVEL = 0.95
METHOD = "paired t, 95%"


@dataclass(frozen=True)
class Decision:
    comparison: str  # what is compared, in the claimed direction ("K conv lowers loss vs none")
    effect: float  # mean paired difference, positive = the claimed direction
    ci: tuple[float, float]
    delta: float  # the minimum effect that matters, fixed before the run
    n: int
    method: str
    outcome: str
    capped: bool = False  # an arm reached its step cap before its plateau (decided only if robust to it)

    def to_json(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d

    def text(self, digits: int = 3) -> str:
        """``effect +0.123 [0.050, 0.196], δ 0.05, n 5: supported`` (what a reason quotes)."""
        lo, hi = self.ci
        return (f"{self.comparison}: effect {self.effect:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}], "
                f"δ {self.delta:g}, n {self.n}: {self.outcome}" + (self._cap_note() if self.capped else ""))

    def _cap_note(self) -> str:
        if "extrapolation" in self.method:
            return (" (an arm at its step cap; the outcome holds with its runs extrapolated)" if
                    self.outcome != UNRESOLVED else " (an arm at its step cap; extrapolating it could change this)")
        return " (an arm at its step cap)"


def t_interval(diffs: list[float], level: float = LEVEL) -> tuple[float, float]:
    """Student-t confidence interval for the mean of ``diffs`` (infinite with fewer than 2 values)."""
    n = len(diffs)
    m = statistics.fmean(diffs)
    if n < 2:
        return (-math.inf, math.inf)
    half = sps.t.ppf(0.5 + level / 2, n - 1) * statistics.stdev(diffs) / math.sqrt(n)
    return (m - half, m + half)


def outcome_of(effect: float, ci: tuple[float, float], delta: float) -> str:
    lo, hi = ci
    if lo > 0 and effect >= delta:
        return SUPPORTED
    if hi < delta:
        return CONTRADICTED
    return UNRESOLVED


Values = list[float]


def paired(comparison: str, a: Values, b: Values, *, delta: float, claimed: str, capped: bool = False,
           reach: tuple[Values, Values] | None = None, alternatives: list[tuple[Values, Values]] | None = None
           ) -> Decision:
    """Compare arm ``a`` with arm ``b`` seed by seed; ``claimed`` is ``"a > b"`` or ``"a < b"``.

    ``a[i]`` and ``b[i]`` must come from the same seed; ``delta > 0`` is the minimum effect in the
    measurement's units; ``capped``: an arm's runs reached their step cap before a plateau; ``reach``:
    the two arms' values with their capped runs extrapolated, or ``alternatives``: every ``(a, b)`` that
    more training could give, for measurements that are not one arm's own values (see the module's text).
    """
    return _decide(comparison, a, b, delta, claimed, capped, _combinations(a, b, reach, alternatives),
                   outcome_of, METHOD)


def _combinations(a, b, reach, alternatives) -> list[tuple[Values, Values]] | None:
    """What a capped comparison must also hold for: the given ``alternatives``, or every mix of final and
    reached values of the two arms."""
    if reach is not None and alternatives is not None:
        raise ValueError("give reach (two arms' extrapolated values) or alternatives, not both")
    if reach is None:
        return None if alternatives is None else list(alternatives)
    ra, rb = reach
    return [(a, rb), (ra, b), (ra, rb)]


def _decide(comparison, a, b, delta, claimed, capped, alternatives, rule, method) -> Decision:
    if claimed not in ("a > b", "a < b"):
        raise ValueError(f"claimed must be 'a > b' or 'a < b', got {claimed!r}")
    if len(a) != len(b) or not a:
        raise ValueError(f"paired arms need the same seeds: got {len(a)} and {len(b)} values")
    if not delta > 0:
        raise ValueError(f"delta must be a positive minimum effect, got {delta}")
    sign = 1.0 if claimed == "a > b" else -1.0

    def effect_ci(xa, xb):
        diffs = [sign * (x - y) for x, y in zip(xa, xb)]
        return statistics.fmean(diffs), t_interval(diffs)

    effect, ci = effect_ci(a, b)
    outcome = rule(effect, ci, delta)
    if capped and alternatives is None:
        outcome = UNRESOLVED
    elif capped:
        if not alternatives or any(len(xa) != len(a) or len(xb) != len(b) for xa, xb in alternatives):
            raise ValueError("each alternative (or reach) must give one value per seed for each arm")
        combos = {outcome, *(rule(*effect_ci(xa, xb), delta) for xa, xb in alternatives)}
        outcome = combos.pop() if len(combos) == 1 else UNRESOLVED
        method += ", robust to the capped runs' extrapolation"
    return Decision(comparison, effect, ci, delta, len(a), method, outcome, bool(capped))


def _noninferior_rule(effect: float, ci: tuple[float, float], delta: float) -> str:
    lo, hi = ci
    return SUPPORTED if lo > -delta else (CONTRADICTED if hi < -delta else UNRESOLVED)


def noninferior(comparison: str, a: Values, b: Values, *, delta: float, claimed: str, capped: bool = False,
                reach: tuple[Values, Values] | None = None, alternatives: list[tuple[Values, Values]] | None = None
                ) -> Decision:
    """Arm ``a`` at least as good as ``b`` up to the margin ``delta`` (``claimed`` as in :func:`paired`:
    the direction in which ``a`` is better)."""
    return _decide(comparison, a, b, delta, claimed, capped, _combinations(a, b, reach, alternatives),
                   _noninferior_rule, f"{METHOD}, non-inferiority margin δ")


def rank_correlation(comparison: str, x: list[float], y: list[float], *, delta: float, claimed: str,
                     resamples: int = 2000, seed: int = 0) -> Decision:
    """Spearman's ρ between paired measurements ``x`` and ``y`` (one pair per trained run), with a 95%
    percentile-bootstrap interval over the pairs; ``claimed`` is ``"negative"`` or ``"positive"``, and
    the effect is ``ρ`` signed so that the claimed direction is positive, decided against ``delta``."""
    import numpy as np

    if claimed not in ("negative", "positive"):
        raise ValueError(f"claimed must be 'negative' or 'positive', got {claimed!r}")
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"a rank correlation needs at least 3 paired values, got {len(x)} and {len(y)}")
    sign = -1.0 if claimed == "negative" else 1.0
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    rho = lambda a, b: float(sps.spearmanr(a, b).statistic)  # noqa: E731
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(resamples):
        i = rng.integers(0, len(xs), len(xs))
        if np.ptp(xs[i]) > 0 and np.ptp(ys[i]) > 0:  # a resample of one repeated value has no ranks
            boots.append(sign * rho(xs[i], ys[i]))
    effect = sign * rho(xs, ys)
    ci = (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))) if boots else (-1.0, 1.0)
    return Decision(comparison, effect, ci, delta, len(xs), "Spearman ρ, bootstrap 95% over runs",
                    outcome_of(effect, ci, delta))


def verdict_of(decisions: list[Decision]) -> str:
    """``holds`` if every comparison is supported, ``refuted`` if any is contradicted, else ``undecided``."""
    outcomes = {d.outcome for d in decisions}
    if outcomes == {SUPPORTED}:
        return "holds"
    if CONTRADICTED in outcomes:
        return "refuted"
    return "undecided"


def verdict_with_caveat(primary: list[Decision], secondary: list[Decision]) -> str:
    """A claim in two parts: ``holds`` when every comparison is supported; ``caveat`` when every primary one
    is and a secondary one is not; ``refuted`` when a primary one is contradicted; otherwise ``undecided``
    (a contradicted secondary part cannot settle a claim whose main part is undecided)."""
    first = {d.outcome for d in primary}
    if first == {SUPPORTED}:
        return "holds" if {d.outcome for d in secondary} <= {SUPPORTED} else "caveat"
    return "refuted" if CONTRADICTED in first else "undecided"


def forest_figure(decisions: list[Decision], title: str = "Paired effects (claimed direction > 0)"):
    """The decisions as a forest plot: each effect with its interval, the δ line and the 0 line."""
    from .registry import Figure

    ys = list(range(len(decisions)))[::-1]
    finite = [x for d in decisions for x in (*d.ci, d.effect, d.delta) if math.isfinite(x)]
    lo, hi = min(finite + [0.0]), max(finite + [0.0])
    series = [{"label": "effect, 95% CI" if i == 0 else None, "x": [d.effect], "y": [y], "style": "o", "color": "C0",
               "xerr": [[d.effect - max(d.ci[0], lo)], [min(d.ci[1], hi) - d.effect]]}
              for i, (d, y) in enumerate(zip(decisions, ys))]
    series.append({"label": "0", "x": [0, 0], "y": [-0.5, len(decisions) - 0.5], "style": "-", "color": "0.5"})
    for i, d in enumerate(decisions):
        series.append({"label": "δ (minimum effect)" if i == 0 else None, "x": [d.delta, d.delta],
                       "y": [ys[i] - 0.4, ys[i] + 0.4], "style": "--", "color": "C3"})
    return Figure(title, "paired effect", "", series, yticks=[d.comparison for d in decisions][::-1])
