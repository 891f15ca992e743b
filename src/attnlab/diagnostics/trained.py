"""Measurements on a trained model's attention, read through ``model.attention_matrices`` (the capture
interface of :class:`attnlab.models.LM`), never through its internals."""

from __future__ import annotations

import torch

from ..tasks import IGNORE
from .sparsity import l1_l2_sparsity


def query_sparsity(model, data, n_batches: int = 2, batch_size: int = 64) -> float:
    """Mean ℓ1/ℓ2 sparsity S of the last layer's (real or implicit) attention rows at the labelled
    (query) positions of ``data``'s validation batches; implicit matrices can be signed, so |A|."""
    vals = []
    for x, y in data.eval_batches(batch_size, n_batches):
        A = model.attention_matrices(x)[-1].abs()  # [b, h, t, t]
        t = A.shape[-1]
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        S = l1_l2_sparsity(A, causal)  # [b, h, t]
        q = (y != IGNORE)[:, None, :].expand_as(S)
        vals.append(S[q])
    return float(torch.cat(vals).mean())
