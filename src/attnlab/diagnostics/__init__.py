"""Instruments on attention matrices ``[b, h, t, t]`` or rows ``[..., n]``: entropy, sparsity, rank, noise
robustness, key–value overlap."""

from .entropy import normalized_entropy, row_entropy
from .noise import noise_probe
from .overlap import kv_overlap
from .rank import effective_rank, numerical_rank, singular_values
from .sparsity import hoyer, l1_l2_sparsity
