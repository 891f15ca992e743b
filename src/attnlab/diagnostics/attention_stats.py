"""Entropy, sparsity and rank of a pretrained model's attention over real text, per layer and head.

Works on pretrained Hugging Face models (:mod:`attnlab.models.hf`) over real text. For causal models
the statistics count only the allowed (lower-triangular) entries; rows with one allowed entry are
left out of the entropy and sparsity means, since they are one-hot by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .entropy import normalized_entropy, row_entropy
from .rank import effective_rank, numerical_rank
from .sparsity import l1_l2_sparsity

RANK_RTOL = 1e-6  # float32 resolution: smaller singular values are noise


def text_windows(tokenizer, text: str, window: int, max_tokens: int) -> list[torch.Tensor]:
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"][0][:max_tokens]
    if ids.numel() < 2:
        raise ValueError("the text is too short: it gives fewer than 2 tokens")
    return [ids[i : i + window] for i in range(0, ids.numel() - 1, window) if ids[i : i + window].numel() > 1]


def analyze_model(hf, text: str, *, window: int = 128, max_tokens: int = 1024,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Per layer and head: mean and std over windows of entropy, normalised entropy, S and effective rank.

    ``window`` is the longest window actually used (the text may give fewer tokens than asked for),
    ``window_requested`` the one asked for, ``tokens`` the number analysed; ``log_window`` is the entropy
    of uniform attention over the longest window, the bound every row's entropy stays under."""
    wins = text_windows(hf.tokenizer, text, window, max_tokens)
    acc: dict[str, list[list[torch.Tensor]]] = {}
    full_rank = []
    for i, ids in enumerate(wins):
        att = hf.attentions(ids[None])
        t = ids.numel()
        valid = torch.ones(t, t, dtype=torch.bool).tril() if hf.causal else torch.ones(t, t, dtype=torch.bool)
        rows = valid.sum(-1) > 1
        for li, A in enumerate(att):
            A = A[0].double()  # [h, t, t]
            H = row_entropy(A, valid)[:, rows].mean(-1)
            Hn = normalized_entropy(A, valid)[:, rows].mean(-1)
            S = l1_l2_sparsity(A, valid)[:, rows].mean(-1)
            er = effective_rank(A) / t
            nr = numerical_rank(A, RANK_RTOL).double() / t
            for key, val in (("entropy", H), ("norm_entropy", Hn), ("sparsity", S), ("eff_rank_frac", er),
                             ("num_rank_frac", nr)):
                acc.setdefault(key, [[] for _ in att])[li].append(val)
            if hf.causal:
                full_rank.append(bool((A.diagonal(dim1=-2, dim2=-1) > 0).all()))
        if progress:
            progress(i + 1, len(wins))
    layers = []
    for li in range(len(acc["entropy"])):
        entry = {"layer": li}
        for key, per_win in acc.items():
            x = torch.stack(per_win[li])  # [windows, h]
            entry[key] = {"mean": x.mean(0).tolist(), "std": x.std(0, unbiased=False).tolist()}
        layers.append(entry)
    used = max(w.numel() for w in wins)  # the text may be shorter than one window
    out = {"model": hf.name, "causal": hf.causal, "windows": len(wins), "window": used, "window_requested": window,
           "tokens": sum(w.numel() for w in wins), "layers": layers,
           "summary": {k: float(torch.stack([torch.stack(w).mean() for w in v]).mean()) for k, v in acc.items()},
           "rank_rtol": RANK_RTOL, "log_window": math.log(used)}
    if hf.causal:
        out["causal_positive_diagonal"] = all(full_rank)
    return out
