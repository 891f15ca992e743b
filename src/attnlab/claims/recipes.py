"""The ledger's shared training recipes: each returns a typed :class:`~attnlab.train.TrainConfig`.

Experiments take a recipe and vary it with keyword arguments (model fields) or ``dataclasses.replace``;
they never import each other. Widths scale with ``budget.model_scale`` and steps with
``budget.train_scale``; everything else is fixed here, before any run.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..models import LMConfig
from ..tasks import MQAR, SMALL_MQAR, Markov, Positional, Text
from ..train import TrainConfig
from ..train.config import EarlyStop, Plateau
from .registry import Budget

LR = 3e-3  # the default; trained claims choose theirs from claims.arms.LR_GRID
WARMUP = 20
# train to a validation plateau: no gain of more than 1e-3 nats for 4 evaluations in a row; a
# recipe's steps (× budget.train_scale) are the cap, and an arm that reaches it before its plateau
# cannot decide a comparison (claims.arms)
PLATEAU = Plateau(patience=4, min_delta=1e-3)
# the ledger's models are small: one thread each trains them nearly as fast as two, and independent
# runs go to parallel processes instead (reproduce --jobs); fixing it here keeps every run's numbers
# the same whichever way the ledger is spread
THREADS = 1
MQAR_SOLVED = 0.99  # validation accuracy at which an MQAR run has solved the task
EVAL_EVERY = 25  # steps between validation evaluations: the curves and the plateau test
# A model of two or more layers learns MQAR through a transition: its layers must compose a token shift and a
# retrieval (an induction circuit), and its loss first creeps along a plateau for hundreds of steps. Four
# evaluations (100 steps) without a gain mistake that for convergence: C7's softmax baseline at the full budget,
# stopped so at step 300 with 0.26 accuracy, solves the task at step 1050 when trained on (0.99). Such runs stop
# at a plateau only after this share of their step cap brought no gain.
TRANSITION_PATIENCE = 1 / 3
# MQAR in Zoology's layout, small enough that a 2-layer model learns it in minutes on 2 cores
MQAR_TASK = SMALL_MQAR
# the step cap of the two-layer recall models of C7 and I1 (× the budget's train_scale): at the full budget's 1500
# steps, 3 of 5 softmax seeds solve MQAR_TASK (by step 1050) and 2 are still short of it; a run at its cap is
# flagged, and its arm decides only where extrapolating it cannot change the outcome
RECALL_STEPS = 500
# Zoology's MQAR layout where one layer's state must hold the pairs (S5): (seq_len, pairs) grow together, up to
# Zoology's (512, 64), where 64 pairs fill a 64-dimensional state; Zoology's vocabulary is 8192, max(256, 2 ×
# seq_len) here keeps a run within seconds on one core (keys and values still never repeat within a sequence).
# The quick budget trains the first regime, the full one all of them.
S5_REGIMES = ((64, 4), (128, 8), (256, 16), (512, 64))
# every S5 step sees the same number of recall queries in every regime: the batch shrinks as the sequences and
# their pairs grow (32 sequences of 64 tokens with 4 pairs, 16 of 128 with 8, 8 of 256 with 16, 2 of 512 with
# 64; 2048 tokens a step, 1024 in the last), so a longer regime tests the state's capacity, not a larger compute
# budget per step
S5_QUERIES_PER_STEP = 128


def s5_batch(task: MQAR) -> int:
    return max(1, S5_QUERIES_PER_STEP // task.num_kv_pairs)


def s5_task(seq_len: int, pairs: int) -> MQAR:
    return MQAR(vocab_size=max(256, 2 * seq_len), seq_len=seq_len, num_kv_pairs=pairs, num_train=5000, num_valid=256)


# Shakespeare bytes in windows of 128
TEXT_TASK = Text(seq_len=128, max_bytes=2_000_000)
# a fresh sparse chain per sequence (16 states, 2 successors each): learnt in context
MARKOV_TASK = Markov(vocab_size=16, seq_len=64, branching=2, in_context=True, num_train=4000, num_valid=256)
# emit each token's position index from random tokens: only position information helps
POSITION_TASK = Positional(kind="position", vocab_size=32, seq_len=32, num_train=5000, num_valid=256)


def _config(name: str, seed: int, budget: Budget, task, model: LMConfig, *, steps: int, batch_size: int,
            eval_every: int, eval_batches: int) -> TrainConfig:
    return TrainConfig(task=task, model=replace(model, d_model=model.d_model * budget.model_scale), name=name, seed=seed,
                       steps=steps * budget.train_scale, batch_size=batch_size, lr=LR, warmup=WARMUP,
                       eval_every=eval_every, eval_batches=eval_batches, plateau=PLATEAU, threads=THREADS)


def mqar(mixer: str, seed: int, budget: Budget, *, short_conv: str | list[str] = "", steps: int = 300,
         task: MQAR = MQAR_TASK, batch_size: int = 64, **model) -> TrainConfig:
    """A 2-layer attention-only model (one head) on :data:`MQAR_TASK` (or ``task``); ``model`` overrides LMConfig
    fields.

    A run that recalls :data:`MQAR_SOLVED` of the queries has solved the task: it stops there (its
    loss may keep creeping down, which is not a gain in what MQAR measures). A model of two or more layers
    waits :data:`TRANSITION_PATIENCE` of its cap for a gain before it stops at a plateau."""
    kw = {"n_layers": 2, **model}
    m = LMConfig(d_model=64, n_heads=1, mixer=mixer, mlp_ratio=0, short_conv=short_conv, **kw)
    conv = short_conv if isinstance(short_conv, str) else "+".join(c or "none" for c in short_conv)
    cfg = _config(f"mqar-{mixer}-{conv or 'none'}", seed, budget, task, m, steps=steps, batch_size=batch_size,
                  eval_every=EVAL_EVERY, eval_batches=4)
    cfg = replace(cfg, early_stop=EarlyStop("accuracy", MQAR_SOLVED))
    return replace(cfg, plateau=transition_plateau(cfg.steps)) if m.n_layers >= 2 else cfg


def transition_plateau(cap: int) -> Plateau:
    """:data:`PLATEAU` with a patience of :data:`TRANSITION_PATIENCE` of a ``cap``-step run (never less)."""
    evals = math.ceil(cap * TRANSITION_PATIENCE / EVAL_EVERY)
    return replace(PLATEAU, patience=max(PLATEAU.patience, evals))


# the same text as BPE tokens (a 1024-token byte-level BPE trained locally): S5's language-modelling half
BPE_TASK = replace(TEXT_TASK, tokenizer="bpe", bpe_vocab=1024)


# The text LMs keep d = 64 at the full budget and get this many times the other recipes' full step caps
# instead (150 → 1350 steps): at d = 128 and 450 steps every text arm of the ledger was still improving when its
# cap stopped it (about 0.006 nats per evaluation), so no comparison between them could rest on a plateau. The
# claims that train text (D1, D3, D4, S5) compare masks, positions and convolutions, not widths, and a step
# at d = 64 costs about a third of one at d = 128, so the same compute reaches three times the steps.
TEXT_LONGER = 3


def text(name: str, seed: int, budget: Budget, *, task: Text = TEXT_TASK, steps: int = 150, **model) -> TrainConfig:
    """A 2-layer, 2-head LM with MLPs (d = 64 at every budget) on :data:`TEXT_TASK` (or a variant of it)."""
    m = LMConfig(d_model=64, n_layers=2, n_heads=2, **model)
    if budget.wide:
        budget = replace(budget, model_scale=1, train_scale=budget.train_scale * TEXT_LONGER)
    return _config(name, seed, budget, task, m, steps=steps, batch_size=16, eval_every=EVAL_EVERY, eval_batches=8)


def markov(seed: int, budget: Budget, *, short_conv: str = "", layers: int = 2) -> TrainConfig:
    """DeltaNet with K = V tied (one projection) on :data:`MARKOV_TASK`: 2 layers with MLPs, or with
    ``layers=1`` one attention-only layer (where a token can reach its predecessor only through the convolution)."""
    mlp = 2 if layers > 1 else 0
    m = LMConfig(d_model=64, n_layers=layers, n_heads=2, mixer="deltanet", mlp_ratio=mlp, short_conv=short_conv,
                 mixer_options={"tie_kv": True})
    name = f"markov-tied-{short_conv or 'none'}" + ("" if layers == 2 else f"-{layers}layer")
    return _config(name, seed, budget, MARKOV_TASK, m, steps=300, batch_size=32, eval_every=EVAL_EVERY,
                   eval_batches=8)


def position(mode: str, seed: int, budget: Budget, *, positions: int = 0) -> TrainConfig:
    """A softmax model (2 layers, 2 heads) with the attention ``mode`` on :data:`POSITION_TASK`: NoPE, or with
    ``positions`` learned absolute position embeddings (the positive control).

    Causal NoPE learns positions from the mask alone, along a noisy curve: at the full budget the shared
    plateau rule (4 evaluations) stopped its seeds at steps 175 to 475 with losses 2.47 to 2.89 while the seed
    trained to its cap reached 2.06. Every arm of the task waits :data:`TRANSITION_PATIENCE` of its cap, the
    same rule for the arms it compares."""
    m = LMConfig(d_model=64, n_layers=2, n_heads=2, mixer="softmax", mode=mode, mixer_options={"rope": False},
                 positions=positions)
    name = f"d4-position-{mode}" + ("-learned" if positions else "")
    cfg = _config(name, seed, budget, POSITION_TASK, m, steps=300, batch_size=32, eval_every=EVAL_EVERY,
                  eval_batches=8)
    return replace(cfg, plateau=transition_plateau(cfg.steps))
