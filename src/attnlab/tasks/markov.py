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
import torch.nn.functional as F

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

    def _in_context(self, n: int, rng: np.random.Generator, g: torch.Generator, keep: bool = False):
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
        return (x, float(H), P) if keep else (x, float(H))

    def build(self, seed: int) -> TaskData:
        if self.in_context:
            if not 1 <= self.branching <= self.vocab_size:
                raise ValueError(f"branching must be in [1, vocab_size={self.vocab_size}], got {self.branching}")
            rng, g = np.random.default_rng(seed), torch.Generator().manual_seed(seed + 1)
            tr, _ = self._in_context(self.num_train, rng, g)
            va, H, Pv = self._in_context(self.num_valid, rng, g, keep=True)
            data = TaskData(self.vocab_size, tr[:, :-1], tr[:, 1:], va[:, :-1], va[:, 1:])
            data.optimum = H  # loss of a model that knows each sequence's chain (no learner from context reaches it)
            data.transitions = Pv  # [num_valid, V, V]: each validation sequence's own chain
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


def bayes_predictive(inputs: torch.Tensor, vocab_size: int, branching: int, concentration: float) -> torch.Tensor:
    """The exact in-context Bayes predictor of :class:`Markov`'s ``in_context`` prior: ``[n, T, V]`` probabilities
    of the token after each position, given the transitions seen before it in the same sequence.

    Under the prior each row of the chain picks ``branching`` successors uniformly (a subset ``S``) with
    Dirichlet(``concentration``) weights on them. Given the counts ``c_j`` of the transitions seen out of the
    current token (``N`` in all, ``m`` distinct successors), every subset containing the ``m`` seen successors is
    equally likely a posteriori (the Dirichlet-multinomial evidence does not depend on the unseen members), so
    ``p(j) = (α + c_j)/(Bα + N)`` for a seen successor and ``p(j) = (B − m)/(V − m) · α/(Bα + N)`` for an unseen one.
    """
    n, T = inputs.shape
    V, B, a = vocab_size, branching, float(concentration)
    x = inputs.long()
    trans = torch.zeros(n, T, V, V, dtype=torch.float64)  # trans[:, t] counts the transitions x_s → x_{s+1}, s < t
    if T > 1:
        step = torch.zeros(n, T - 1, V, V, dtype=torch.float64)
        step[torch.arange(n)[:, None], torch.arange(T - 1), x[:, :-1], x[:, 1:]] = 1.0
        trans[:, 1:] = step.cumsum(1)
    c = trans[torch.arange(n)[:, None], torch.arange(T), x]  # [n, T, V]: counts out of the current token
    N = c.sum(-1, keepdim=True)
    m = (c > 0).sum(-1, keepdim=True).double()
    seen = (a + c) / (B * a + N)
    unseen = (B - m).clamp_min(0) / (V - m).clamp_min(1) * a / (B * a + N)
    return torch.where(c > 0, seen, unseen)


def unigram_predictive(inputs: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """An in-context unigram predictor (Krichevsky–Trofimov): ``p(j) = (n_j + ½)/(t + V/2)`` from the counts of
    the ``t`` tokens read so far, ``[n, T, V]``. What a model that can only look tokens up, not their
    successors, can reach; S4 measures how much of the gap from it to the Bayes predictor a model closes."""
    counts = F.one_hot(inputs.long(), vocab_size).double().cumsum(1)
    t = torch.arange(1, inputs.shape[1] + 1, dtype=torch.float64)[None, :, None]
    return (counts + 0.5) / (t + vocab_size / 2)


def predictive_loss(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-probability of ``labels [n, T]`` under ``probs [n, T, V]`` (nats/token)."""
    return float(-probs.gather(-1, labels.long()[..., None]).log().mean())
