"""Instruments on attention matrices ``[b, h, t, t]`` or rows ``[..., n]``: entropy, sparsity, rank."""

from .entropy import normalized_entropy, row_entropy
from .rank import effective_rank, numerical_rank, singular_values
from .sparsity import hoyer, l1_l2_sparsity
