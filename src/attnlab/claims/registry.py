"""The claim ledger: every claim ID of ``shared/claims.md`` with its statement, source and experiment.

A claim's experiment is a function ``run(budget) -> Evidence``, or ``run(budget, runs) -> Evidence`` when
it trains models (``runs`` is the :class:`~attnlab.train.RunMemo` of the results folder); its decision
rule and tolerance are module-level constants written before the run, and its verdict is computed
from the measurements.
Claims whose experiment needs machinery that attnlab does not have yet are listed with
``run=None`` and reported as ``pending``, never with a verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# holds / refuted: the evidence decides the claim; caveat: part of it holds; undecided: the budget's
# evidence cannot decide (an interval that contains both answers)
VERDICTS = ("holds", "caveat", "refuted", "undecided")


@dataclass(frozen=True)
class Budget:
    """How much compute a claim may spend. ``quick``: the whole ledger in minutes on 2 cores."""

    name: str
    seeds: tuple[int, ...]
    mc_samples: int
    trials: int
    scale: int  # a size multiplier for lengths and grids
    train_scale: int = 1  # a multiplier for training steps
    model_scale: int = 1  # a multiplier for the width of trained models
    wide: bool = False  # the whole breadth of each sweep; otherwise the arms the decision reads
    lr_beyond: int = 2  # how many rates past the grid's edge a learning-rate pilot may try (claims.arms)

    @staticmethod
    def get(name: str) -> Budget:
        if name not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}; got {name!r}")
        return BUDGETS[name]


BUDGETS = {
    # the quick budget pilots on the grid alone: a round past its edge is a batch of one to six runs that the
    # ledger waits for (about 2 of its 15 minutes on two cores); an arm whose best rate is an edge says so
    "quick": Budget("quick", seeds=(0, 1, 2), mc_samples=100_000, trials=100, scale=1, lr_beyond=0),
    "full": Budget("full", seeds=(0, 1, 2, 3, 4), mc_samples=1_000_000, trials=400, scale=4, train_scale=3,
                   model_scale=2, wide=True),
}


@dataclass
class Figure:
    """Data for one figure, drawn by :mod:`attnlab.report.figures` (never pixels)."""

    title: str
    xlabel: str
    ylabel: str
    # each {"label", "x", "y", optional "yerr" or "xerr" (symmetric list, or [below, above]), "style"
    # (o, -, --, -o), "color"}
    series: list[dict[str, Any]]
    logx: bool = False
    logy: bool = False
    xticks: list[str] | None = None  # names for the x positions 0, 1, …: a categorical axis
    yticks: list[str] | None = None  # names for the y positions 0, 1, … (a forest plot's comparisons)


@dataclass
class Evidence:
    verdict: str
    reason: str
    measured: dict[str, Any]
    seeds: list[int] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    source: str
    method: str = ""
    tolerance: str = ""
    run: Callable[..., Evidence] | None = None
    trains: bool = False  # run takes (budget, runs): it trains models through the results folder's memo
    why: str = ""  # the reasons for the design and its settings (the report and docs/claims.md show them)


SOURCES = {
    "R": "9593 (softmax robustness and information)",
    "I": "9593 (softmax robustness and information)",
    "S": "11320 (linear attention and short convolution)",
    "D": "9547 (decoder-only FAQ; parent post 9529)",
    "C": "9889 (can attention concentrate?)",
}

STATEMENTS = {
    "R1": "Softmax attention is robust to i.i.d. score noise: the output error vanishes like n^(−1/2) "
    "for Gaussian, uniform and Gumbel noise, because E[e^ε] cancels.",
    "R2": "The cancellation is special to exp: with relu² or identity weights, noise leaves a bias that does "
    "not vanish as n grows.",
    "R3": "With Laplace noise of scale b ≥ 1, E[e^ε] is infinite and the robustness argument breaks.",
    "R4": "Softmax is 1-Lipschitz from ℓ∞ to ℓ1: ‖softmax(s + ε) − softmax(s)‖₁ ≤ ‖ε‖∞.",
    "I1": "Scores initialised too large give near one-hot rows (H ≈ 0), vanishing gradients and training that "
    "does not start.",
    "I2": "For p ∝ exp(cos θ / τ) with τ = 1 the entropy cannot fall below log n − 0.4744746, reached with a "
    "fraction t* = 0.7944868 of the scores at −1 (half-and-half gives log n − 0.3278); the floor depends on τ.",
    "I3": "For Gaussian scores s ~ N(0, σ²) the entropy is about log n − C with C ≈ 0.4745 at σ = 1.",
    "I4": "Scaling scores by 1/√d keeps the entropy of random attention independent of d; without it H → 0.",
    "I5": "The effective rank of the attention matrix is exp(H).",
    "S1": "TTT with a linear model, squared loss and one SGD step per token is DeltaNet.",
    "S2": "Adding a decay (an L2 regulariser on the TTT loss) gives Gated DeltaNet.",
    "S3": "With K = V, TTT is degenerate: MesaNet's exact solution outputs o_t ≈ q_t.",
    "S4": "A short causal convolution on K turns 'predict yourself' into next-token prediction: with K = V tied, "
    "DeltaNet with a K convolution learns a bigram model, without it cannot.",
    "S5": "A short convolution on K gives most of the gain; on Q or V much less (MQAR and language modelling).",
    "S6": "Muon-style updates and chunk (mini-batch) updates (LaCT) are instances of the same TTT framework.",
    "D1": "At equal parameters and compute a decoder-only model is at least as good at generation as a "
    "prefix-LM (UniLM) model.",
    "D2": "Bidirectional softmax attention has a low-rank problem when n ≫ d; the causal mask makes the matrix "
    "lower-triangular with a positive diagonal, so it is full rank.",
    "D3": "Mixed forward/backward attention over the input trains faster than plain bidirectional attention.",
    "D4": "The causal mask carries position information: a causal NoPE model can learn position-dependent tasks, a "
    "bidirectional one cannot; RoPE still beats NoPE on language modelling.",
    "C1": "The sparsity S(x) = E|x| / √(E x²) lies in (0, 1]; smaller is sparser.",
    "C2": "For f = exp and keys k ~ N(μ, σ²I): S = exp(−σ²‖q‖²/2), which can reach 0.",
    "C3": "For f = relu² the closed form in β = q·μ, γ = σ‖q‖ goes to 0 only when β < 0.",
    "C4": "For f = identity the closed form is even in β and bounded away from 0: linear attention cannot "
    "concentrate.",
    "C5": "Non-negative linear attention: S = 1/√(1 + q̃ᵀΣ̃q̃/(q̃ᵀμ̃)²), and its i.i.d. simplification.",
    "C6": "A linear RNN with decay λ has S = √((1−λⁿ)/(n(1−λ))·(1+λ)/(1+λⁿ)), which goes to 0 as n → ∞.",
    "C7": "Trained softmax attention concentrates (low S) where trained linear attention cannot, and this tracks the "
    "gap in associative recall.",
}

REGISTRY: dict[str, Claim] = {
    cid: Claim(cid, text, SOURCES[cid[0]]) for cid, text in STATEMENTS.items()
}


def experiment(cid: str, *, method: str, tolerance: str, why: str = ""):
    """Decorator: attach ``run`` (and its method, tolerance and the reasons for its design, stated before any
    run) to claim ``cid``."""

    def deco(fn: Callable[..., Evidence]):
        import inspect

        trains = "runs" in inspect.signature(fn).parameters
        c = REGISTRY[cid]
        REGISTRY[cid] = Claim(c.id, c.statement, c.source, method, tolerance, fn, trains, why)
        return fn

    return deco


def verdict(ok: bool, caveat: bool = False) -> str:
    return "refuted" if not ok else ("caveat" if caveat else "holds")


def claims_markdown() -> str:
    """``docs/claims.md``: one section per claim with its statement, design, decision rule and the reasons for
    them, generated from this registry so that the page and the code cannot drift apart."""
    lines = ["# The claims and how attnlab decides them", "",
             "Generated by `attnlab reproduce --list --markdown` from the experiments' own texts (their method, "
             "decision rule and reasons are module constants written before any run); do not edit by hand. "
             "`../shared/claims.md` states the claims; the verdict words are explained in the README.", ""]
    for c in REGISTRY.values():
        lines += [f"## {c.id}", "", f"**Claim** ({c.source}). {c.statement}", ""]
        if c.run is None:
            lines += ["*Pending: no experiment yet.*", ""]
            continue
        lines += [f"**Design.** {c.method}", "", f"**Decision rule.** {c.tolerance}", ""]
        if c.why:
            lines += [f"**Why.** {c.why}", ""]
        if c.trains:
            lines += ["*Trained: arms compared paired by seed (claims.decide), learning rate from a grid, runs "
                      "stopped at a validation plateau; an arm at its step cap decides only where its extrapolation "
                      "cannot change the outcome.*", ""]
    return "\n".join(lines)
