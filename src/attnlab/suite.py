"""``attnlab suite MIXER``: put any registered mixer (yours included) through the lab in one command.

1. **contract**: the (real or implicit) attention matrix reproduces the output; a causal mixer
   ignores the future and decodes token by token with a cache exactly as in one pass;
2. **MQAR**: a 2-layer model with the mixer trained on associative recall, next to softmax attention
   with the same budget;
3. **diagnostics**: ℓ1/ℓ2 sparsity and effective rank of its trained attention at the query rows;
4. **speed**: forward time against softmax attention at a few lengths, as ratios measured in one run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from .diagnostics import effective_rank
from .diagnostics.trained import query_sparsity
from .mixers import MIXERS, build_mixer
from .models import LMConfig
from .tasks import SMALL_MQAR
from .train import RunMemo, TrainConfig, load_trained


def contract(name: str, options: dict, d_model: int = 32, n_heads: int = 2, t: int = 13) -> dict:
    torch.manual_seed(0)
    m = build_mixer(name, d_model, n_heads, **options).eval()
    x = torch.randn(2, t, d_model)
    out = {}
    with torch.no_grad():
        y = m(x)
        try:
            A = m.attention_matrix(x)
            o = torch.einsum("bhts,bshd->bthd", A, m.values(x))
            out["matrix_reproduces_output"] = bool(torch.allclose(o, m.pre_output(x), atol=1e-4))
        except (ValueError, NotImplementedError) as e:
            out["matrix_reproduces_output"] = f"n/a ({e})"
        if getattr(m, "causal", True):
            x2 = x.clone()
            x2[:, t // 2 :] = torch.randn_like(x2[:, t // 2 :]) * 3
            out["ignores_the_future"] = bool(torch.allclose(m(x2)[:, : t // 2], y[:, : t // 2], atol=1e-5))
            try:
                cache: dict = {}
                steps = torch.cat([m(x[:, i : i + 1], cache=cache) for i in range(t)], 1)
                out["cache_equals_full"] = bool(torch.allclose(steps, y, atol=1e-4))
            except (ValueError, TypeError) as e:
                out["cache_equals_full"] = f"n/a ({e})"
    return out


def mqar_config(mixer: str, options: dict, steps: int, seed: int = 0) -> TrainConfig:
    """A 2-layer attention-only model (d = 64, one head) with ``mixer`` on :data:`SMALL_MQAR`."""
    model = LMConfig(d_model=64, n_layers=2, n_heads=1, mixer=mixer, mlp_ratio=0, mixer_options=dict(options))
    return TrainConfig(task=SMALL_MQAR, model=model, name=f"mqar-{mixer}", seed=seed, steps=steps, batch_size=64,
                       lr=3e-3, warmup=20, eval_every=100, eval_batches=4)


def mqar(name: str, options: dict, steps: int, seed: int = 0) -> dict:
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = RunMemo(tmp)
        for mixer, opts in ((name, options), ("softmax", {})):
            r = runs.trained(mqar_config(mixer, opts, steps, seed))
            res[mixer] = {"accuracy": r["valid"]["accuracy"], "loss": r["valid"]["loss"], "params": r["params"]}
            if mixer == name:
                model, data, _ = load_trained(r["run_dir"])
                res[mixer]["query_sparsity"] = query_sparsity(model, data, n_batches=1)
                x, _ = next(data.eval_batches(16, 1))
                A = model.attention_matrices(x)[-1]
                res[mixer]["effective_rank_frac"] = float(effective_rank(A).mean() / A.shape[-1])
    return res


SPEED_WARMUP = 2
SPEED_REPS = 7


def speed(name: str, options: dict, lengths=(256, 1024), reps: int = SPEED_REPS) -> dict:
    """Forward time of the mixer against softmax attention (d_model 256, 4 heads), measured as ratios in one
    run: after ``SPEED_WARMUP`` calls each, the two are timed alternately ``reps`` times (so a drift of the
    machine hits both alike, and who goes first alternates), and each repetition gives one paired ratio. The
    median ratio is reported with the range of the paired ratios; a range that contains 1 means the difference
    is within this machine's noise."""
    out = {}
    for T in lengths:
        models = {}
        for mixer, opts in ((name, options), ("softmax", {})):
            torch.manual_seed(0)
            models[mixer] = build_mixer(mixer, 256, 4, **opts).eval()
        x = torch.randn(1, T, 256)
        times: dict[str, list[float]] = {m: [] for m in models}
        with torch.no_grad():
            for m in models.values():
                for _ in range(SPEED_WARMUP):
                    m(x)
            for i in range(reps):
                order = list(models.items())
                for mixer, m in order if i % 2 == 0 else order[::-1]:  # who goes first alternates
                    t0 = time.perf_counter()
                    m(x)
                    times[mixer].append(time.perf_counter() - t0)
        ratios = sorted(a / b for a, b in zip(times[name], times["softmax"]))
        lo, hi = ratios[0], ratios[-1]
        out[str(T)] = {"seconds": statistics.median(times[name]),
                       "softmax_seconds": statistics.median(times["softmax"]),
                       "vs_softmax": statistics.median(ratios), "ratio_range": [lo, hi], "reps": reps,
                       "within_noise": lo <= 1.0 <= hi}
    return out


def run_suite(name: str, options: dict | None = None, steps: int = 300,
              progress: Callable[[str], None] | None = None) -> dict:
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; valid names: {', '.join(sorted(MIXERS))} (register yours with "
                         "@register_mixer and pass --import your_module)")
    options = options or {}
    say = progress or (lambda s: None)
    say("contract checks")
    c = contract(name, options)
    say(f"training {name} and softmax on MQAR ({steps} steps each)")
    m = mqar(name, options, steps)
    say("timing against softmax")
    return {"mixer": name, "options": options, "contract": c, "mqar": m, "speed": speed(name, options)}
