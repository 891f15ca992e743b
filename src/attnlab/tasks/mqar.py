"""Multi-query associative recall (MQAR), laid out as Zoology's generator (Arora et al. 2023).

Worked example (``vocab_size=20, seq_len=16, num_kv_pairs=2, random_non_queries=False``)::

    inputs:  2   18    4   11    0    0    4    0    0    0    0    0    2    0    0    0
    labels: -100 -100 -100 -100 -100 -100 11  -100 -100 -100 -100 -100 18  -100 -100 -100

(Zoology's own docstring uses ``vocab_size=12``, which its assertion ``vocab_size > seq_len`` rejects.)

Keys come from ``[1, vocab/2)``, values from ``[vocab/2, vocab)``, each key once per sequence; the
key–value pairs fill the first ``2·num_kv_pairs`` positions; each key is queried once, at an even
offset of the remaining space drawn from a power law with exponent ``power_a`` (small = short gaps
likelier); the label sits at the query position. With ``random_non_queries`` the zeros become
random tokens. Accuracy: per sequence, the fraction of its queries answered, averaged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import IGNORE, TaskData


def multiquery_ar(vocab_size: int, num_examples: int, seq_len: int, num_kv_pairs: int, power_a: float = 0.01,
                  random_non_queries: bool = True, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    if seq_len % 2:
        raise ValueError(f"seq_len must be even, got {seq_len}")
    if vocab_size <= seq_len:
        raise ValueError(f"vocab_size ({vocab_size}) must exceed seq_len ({seq_len}), as in Zoology")
    if 4 * num_kv_pairs > seq_len:
        raise ValueError(f"num_kv_pairs ({num_kv_pairs}) needs seq_len ≥ 4·num_kv_pairs = {4 * num_kv_pairs}")
    if num_kv_pairs > vocab_size // 2 - 1:
        raise ValueError(f"num_kv_pairs ({num_kv_pairs}) exceeds the number of distinct keys ({vocab_size // 2 - 1})")
    rng = np.random.default_rng(seed)
    half = vocab_size // 2
    ctx = 2 * num_kv_pairs
    keys = np.stack([rng.choice(np.arange(1, half), num_kv_pairs, replace=False) for _ in range(num_examples)])
    vals = np.stack([rng.choice(np.arange(half, vocab_size), num_kv_pairs, replace=False)
                     for _ in range(num_examples)])
    space = (seq_len - ctx) // 2
    p = power_a * np.arange(1, space + 1) ** (power_a - 1)
    p /= p.sum()
    gaps = np.stack([rng.choice(space, num_kv_pairs, replace=False, p=p) for _ in range(num_examples)])
    seq = np.zeros((num_examples, seq_len + 1), dtype=np.int64)
    seq[:, 0:ctx:2], seq[:, 1:ctx:2] = keys, vals
    rows = np.arange(num_examples)[:, None]
    seq[rows, ctx + 2 * gaps] = keys
    lab = np.full((num_examples, seq_len + 1), IGNORE, dtype=np.int64)
    lab[rows, ctx + 2 * gaps + 1] = vals
    inputs, labels = torch.from_numpy(seq[:, :-1].copy()), torch.from_numpy(lab[:, 1:].copy())
    if random_non_queries:
        g = torch.Generator().manual_seed(seed + 1)
        noise = torch.randint(vocab_size, inputs.shape, generator=g)
        inputs = torch.where(inputs == 0, noise, inputs)
    return inputs, labels


@dataclass
class MQAR:
    vocab_size: int = 256
    seq_len: int = 64
    num_kv_pairs: int = 8
    power_a: float = 0.01
    random_non_queries: bool = True
    num_train: int = 20_000
    num_valid: int = 1_000

    def build(self, seed: int) -> TaskData:
        kw = dict(vocab_size=self.vocab_size, seq_len=self.seq_len, num_kv_pairs=self.num_kv_pairs,
                  power_a=self.power_a, random_non_queries=self.random_non_queries)
        xi, yi = multiquery_ar(num_examples=self.num_train, seed=seed, **kw)
        xv, yv = multiquery_ar(num_examples=self.num_valid, seed=seed + 7919, **kw)
        return TaskData(self.vocab_size, xi, yi, xv, yv)


# A small setting that a 2-layer model learns in minutes on 2 cores: the ledger's recipes and
# ``attnlab suite`` train on it
SMALL_MQAR = MQAR(vocab_size=64, seq_len=32, num_kv_pairs=4, num_train=5000, num_valid=256)
