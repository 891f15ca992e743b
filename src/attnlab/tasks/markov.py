"""Sequences from a sparse random Markov chain (claim S4's bigram task).

Each token has ``branching`` possible successors (drawn once per seed) with Dirichlet weights; a
sequence is a walk of the chain. The label at ``t`` is the token at ``t + 1``; the best achievable
loss is the chain's entropy rate, reported as ``TaskData``'s ``optimum`` attribute. With keys and
values tied (``tie_kv=True``), a model has to map "the previous token" to "the next token": only a
short convolution on K lets the key at ``t`` see the token at ``t − 1``.

With ``in_context=True`` every sequence has its own chain, so the weights cannot memorise the
transitions: the model must read them from the context (the setting where the K convolution
matters, as in induction heads on Markov chains).

Worked example (``vocab_size=4, branching=1``: a deterministic cycle, say 2 → 0 → 3 → 1 → 2)::

    inputs: 2 0 3 1 2 0 3 1     labels: 0 3 1 2 0 3 1 2
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import TaskData


@dataclass
class Markov:
    vocab_size: int = 64
    seq_len: int = 128
    branching: int = 2
    concentration: float = 1.0
    num_train: int = 10_000
    num_valid: int = 500
    in_context: bool = False  # a fresh chain per sequence: the transitions must be learned from the context

    def chain(self, seed: int) -> torch.Tensor:
        if not 1 <= self.branching <= self.vocab_size:
            raise ValueError(f"branching must be in [1, vocab_size={self.vocab_size}], got {self.branching}")
        rng = np.random.default_rng(seed)
        P = np.zeros((self.vocab_size, self.vocab_size))
        for i in range(self.vocab_size):
            nxt = rng.choice(self.vocab_size, self.branching, replace=False)
            P[i, nxt] = rng.dirichlet(np.full(self.branching, self.concentration))
        return torch.from_numpy(P)

    def sample(self, P: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
        x = torch.empty(n, self.seq_len + 1, dtype=torch.long)
        x[:, 0] = torch.randint(self.vocab_size, (n,), generator=g)
        for t in range(self.seq_len):
            x[:, t + 1] = torch.multinomial(P[x[:, t]], 1, generator=g)[:, 0]
        return x

    def _in_context(self, n: int, rng: np.random.Generator, g: torch.Generator):
        V, B = self.vocab_size, self.branching
        P = np.zeros((n, V, V))
        nxt = np.argsort(rng.random((n, V, V)), axis=-1)[..., :B]
        w = rng.dirichlet(np.full(B, self.concentration), size=(n, V))
        np.put_along_axis(P, nxt, w, axis=-1)
        P = torch.from_numpy(P)
        x = torch.empty(n, self.seq_len + 1, dtype=torch.long)
        x[:, 0] = torch.randint(V, (n,), generator=g)
        rows = torch.arange(n)
        for t in range(self.seq_len):
            x[:, t + 1] = torch.multinomial(P[rows, x[:, t]], 1, generator=g)[:, 0]
        H = -(P * P.clamp_min(1e-300).log()).sum(-1).mean()  # uniform-stationary approximation per chain
        return x, float(H)

    def build(self, seed: int) -> TaskData:
        if self.in_context:
            if not 1 <= self.branching <= self.vocab_size:
                raise ValueError(f"branching must be in [1, vocab_size={self.vocab_size}], got {self.branching}")
            rng, g = np.random.default_rng(seed), torch.Generator().manual_seed(seed + 1)
            tr, _ = self._in_context(self.num_train, rng, g)
            va, H = self._in_context(self.num_valid, rng, g)
            data = TaskData(self.vocab_size, tr[:, :-1], tr[:, 1:], va[:, :-1], va[:, 1:])
            data.optimum = H  # loss of a model that knows each sequence's chain (an in-context learner's floor)
            return data
        P = self.chain(seed)
        g = torch.Generator().manual_seed(seed + 1)
        tr, va = self.sample(P, self.num_train, g), self.sample(P, self.num_valid, g)
        data = TaskData(self.vocab_size, tr[:, :-1], tr[:, 1:], va[:, :-1], va[:, 1:])
        pi = torch.full((self.vocab_size,), 1.0 / self.vocab_size, dtype=torch.float64)
        for _ in range(500):  # stationary distribution by power iteration
            pi = pi @ P
        H = -(P * P.clamp_min(1e-300).log()).sum(1)
        data.optimum = float((pi * H).sum())  # entropy rate (nats/token): the best possible loss
        data.transitions = P
        return data
