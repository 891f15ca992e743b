"""What every task builds: token sequences with labels, split into train and validation.

A task is a config (a dataclass) with ``build(seed) -> TaskData``. Labels are next-token targets
aligned with the inputs (``labels[:, t]`` is what the model should emit after reading
``inputs[:, :t+1]``); ``IGNORE = -100`` marks positions that count neither in the loss nor in the
accuracy. Batches are drawn statelessly: batch ``i`` of seed ``s`` depends only on ``(s, i)``, so a
resumed or distributed run sees exactly the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass
class TaskData:
    vocab_size: int
    train_inputs: torch.Tensor  # [N, T] long (or a 1-D token stream for text)
    train_labels: torch.Tensor | None
    valid_inputs: torch.Tensor
    valid_labels: torch.Tensor | None
    prefix_len: int | None = None  # for prefix-LM tasks: the first prefix_len tokens are the input
    seq_len: int | None = None  # for streams: window length
    train_prefix_loss: bool = False  # decoder-only training also predicts the prefix (validation never does)

    def batch(self, step: int, batch_size: int, seed: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``step`` of the run with ``seed``: a pure function of its arguments."""
        x = self.train_inputs if split == "train" else self.valid_inputs
        y = self.train_labels if split == "train" else self.valid_labels
        # not hash(): Python salts string hashes per process, and batches must agree across processes
        g = torch.Generator().manual_seed((seed * 1_000_003 + step) * 2 + (split != "train"))
        if y is None:  # a token stream: random windows, labels are the next tokens
            T = self.seq_len
            if x.numel() <= T + 1:
                raise ValueError(f"the {split} text has {x.numel()} tokens, fewer than seq_len + 1 = {T + 1}")
            starts = torch.randint(0, x.numel() - T - 1, (batch_size,), generator=g)
            idx = starts[:, None] + torch.arange(T + 1)
            w = x[idx]
            inp, lab = w[:, :-1], w[:, 1:].clone()
            if self.prefix_len and not (split == "train" and self.train_prefix_loss):
                lab[:, : self.prefix_len - 1] = IGNORE  # the loss counts only the continuation
            return inp, lab
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=g)
        return x[idx], y[idx]

    def eval_batches(self, batch_size: int, max_batches: int, seed: int = 0):
        """Fixed validation batches: the whole validation set in order (sequences), or seeded windows."""
        if self.valid_labels is None:
            for i in range(max_batches):
                yield self.batch(i, batch_size, seed=10_000 + seed, split="valid")
            return
        n = self.valid_inputs.shape[0]
        for i, s in enumerate(range(0, n, batch_size)):
            if i >= max_batches:
                return
            yield self.valid_inputs[s : s + batch_size], self.valid_labels[s : s + batch_size]
