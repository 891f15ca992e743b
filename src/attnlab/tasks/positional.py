"""Tasks that need position information (claim D4): a permutation-equivariant model cannot solve them.

All draw random content tokens from ``[2, vocab_size)``; ``0`` is a separator, ``1`` a filler.

- ``position``: emit the index of each position (``label_t = t``); needs ``vocab_size > seq_len``.
  inputs ``7 3 3 9``, labels ``0 1 2 3``.
- ``copy``: ``n`` tokens, a separator, then the same ``n`` tokens; the loss counts the copy.
  inputs ``5 8 2 0 5 8 2``, labels ``· · · 5 8 2 ·`` (``·`` = ignored; the label at ``t`` is the
  token at ``t + 1``).
- ``reverse``: as copy, but the second half is the first reversed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import check_choice
from .base import IGNORE, TaskData

KINDS = ("position", "copy", "reverse")


@dataclass
class Positional:
    kind: str = "copy"
    vocab_size: int = 32
    seq_len: int = 32  # for copy/reverse: n = (seq_len − 1) // 2 content tokens, then the separator
    num_train: int = 10_000
    num_valid: int = 500

    def _make(self, n_ex: int, g: torch.Generator):
        T = self.seq_len
        if self.kind == "position":
            if self.vocab_size < T:
                raise ValueError(f"the position task needs vocab_size ≥ seq_len ({T}), got {self.vocab_size}")
            x = torch.randint(2, self.vocab_size, (n_ex, T), generator=g)
            return x, torch.arange(T).expand(n_ex, T).clone()
        n = (T - 1) // 2
        content = torch.randint(2, self.vocab_size, (n_ex, n), generator=g)
        second = content if self.kind == "copy" else content.flip(1)
        seq = torch.cat([content, torch.zeros(n_ex, 1, dtype=torch.long), second,
                         torch.ones(n_ex, T + 1 - 2 * n - 1, dtype=torch.long)], 1)
        x, y = seq[:, :T], seq[:, 1 : T + 1].clone()
        y[:, :n] = IGNORE  # only the reproduced half counts
        y[:, 2 * n :] = IGNORE
        return x, y

    def build(self, seed: int) -> TaskData:
        check_choice("kind", self.kind, KINDS)
        g = torch.Generator().manual_seed(seed)
        xi, yi = self._make(self.num_train, g)
        xv, yv = self._make(self.num_valid, g)
        return TaskData(self.vocab_size, xi, yi, xv, yv)
