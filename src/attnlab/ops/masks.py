"""Boolean attention masks ``[b or 1, h or 1, t_q, t_k]``: True where query i may read key j.

Masks of posts 9529/9547: causal (decoder-only), bidirectional (encoder), prefix (UniLM: the
first ``prefix_len`` positions see each other, the rest is causal) and fwd_bwd (half of the
heads read left-to-right, half right-to-left; with a prefix, mixed over the prefix and causal
after it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

MASKS = ("causal", "bidirectional", "prefix", "fwd_bwd")


def _prefix_tensor(prefix_len: int | Sequence[int] | torch.Tensor, batch: int, t: int, device) -> torch.Tensor:
    """``prefix_len`` as a long tensor ``[batch]``, validated against ``0 <= p <= t``."""
    if isinstance(prefix_len, bool):
        raise TypeError(f"prefix_len must be an int or one int per batch row, got {prefix_len!r}")
    if isinstance(prefix_len, int):
        p = torch.full((batch,), prefix_len, dtype=torch.long, device=device)
    else:
        p = torch.as_tensor(prefix_len, device=device)
        if p.is_floating_point() or p.dtype == torch.bool:
            raise TypeError(f"prefix_len must hold integers, got dtype {p.dtype}")
        if p.ndim != 1 or p.shape[0] != batch:
            raise ValueError(
                f"prefix_len must be an int or have one entry per batch row ({batch}), got shape {tuple(p.shape)}"
            )
        p = p.long()
    if bool((p < 0).any()) or bool((p > t).any()):
        raise ValueError(f"prefix_len must lie in [0, seq_len={t}], got {p.tolist()}")
    return p


def forward_heads(n_heads: int) -> int:
    """Number of left-to-right heads in a fwd_bwd mask: the first ceil(h/2) heads."""
    return (n_heads + 1) // 2


def build_mask(
    mask: str,
    t: int,
    *,
    batch: int = 1,
    n_heads: int = 1,
    prefix_len: int | Sequence[int] | torch.Tensor | None = None,
    device: torch.device | str | None = None,
    t_k: int | None = None,
) -> torch.Tensor:
    """Allowed-positions mask ``[b', h', t, t_k]`` (broadcastable; ``b'``/``h'`` may be 1).

    Every mask keeps the diagonal, so no row is empty and softmax never sees an all ``-inf`` row.
    ``t_k > t`` (keys from a decoding cache) is allowed for the causal and bidirectional masks;
    then the queries are the last ``t`` positions.
    """
    if mask not in MASKS:
        raise ValueError(f"mask must be one of {', '.join(map(repr, MASKS))}; got {mask!r}")
    t_k = t if t_k is None else t_k
    if t_k != t and mask not in ("causal", "bidirectional"):
        raise ValueError(f"mask={mask!r} needs as many keys as queries; a decoding cache works with 'causal' only")
    if mask in ("causal", "bidirectional") and prefix_len is not None:
        raise ValueError("prefix_len is only meaningful with mask='prefix' or mask='fwd_bwd'")
    if mask == "bidirectional":
        return torch.ones(1, 1, t, t_k, dtype=torch.bool, device=device)
    i = torch.arange(t, device=device)
    if mask == "causal":
        if t_k < t:  # aligned to the end, the first t − t_k queries would see no key at all (a NaN row)
            raise ValueError(f"causal attention needs at least as many keys as queries: got {t} queries and {t_k} keys "
                             "(keys from a cache come first, queries are the last positions)")
        j = torch.arange(t_k, device=device)
        return (j[None, :] <= i[:, None] + (t_k - t))[None, None]
    causal = i[None, :] <= i[:, None]  # [t, t]: key j <= query i
    if mask == "prefix":
        if prefix_len is None:
            raise ValueError("mask='prefix' needs prefix_len (an int, or one per batch row)")
        p = _prefix_tensor(prefix_len, batch, t, device)[:, None, None]  # [b, 1, 1]
        in_prefix = (i[None, :, None] < p) & (i[None, None, :] < p)  # [b, t, t]
        return (causal[None] | in_prefix)[:, None]
    # fwd_bwd
    if n_heads < 2:
        raise ValueError(f"mask='fwd_bwd' needs at least 2 heads (half read forward, half backward), got {n_heads}")
    anti = i[None, :] >= i[:, None]
    if prefix_len is None:
        bwd = anti[None]  # [1, t, t]
    else:
        p = _prefix_tensor(prefix_len, batch, t, device)[:, None, None]
        q_in = i[None, :, None] < p
        k_in = i[None, None, :] < p
        # inside the prefix: right-to-left within the prefix; after it: causal as usual
        bwd = torch.where(q_in, anti[None] & k_in, causal[None])  # [b, t, t]
    nf = forward_heads(n_heads)
    fwd = causal[None].expand(bwd.shape[0], t, t)
    heads = [fwd] * nf + [bwd] * (n_heads - nf)
    return torch.stack(heads, dim=1)  # [b, h, t, t]
