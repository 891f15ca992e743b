"""A small language model around any registered mixer: embeddings, n × (norm, mixer, norm, MLP), head.

Modes: ``"decoder"`` (causal everywhere), ``"prefix"`` (UniLM: bidirectional over the first
``prefix_len`` tokens, causal after), ``"fwd_bwd"`` (post 9529's mixed attention over the prefix: half
of the heads left-to-right, half right-to-left, causal after) and ``"bidirectional"``. Modes other
than decoder need a mixer that can look ahead (the quadratic attentions); asking a recurrent mixer
for one is a configuration error, not a silent causal model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..checks import check_choice, check_positive_int
from ..mixers import MIXERS, build_mixer
from ..ops.norm import RMSNorm
from ..ops.swiglu import swiglu

MODES = ("decoder", "prefix", "fwd_bwd", "bidirectional")
MODE_MASK = {"decoder": "causal", "prefix": "prefix", "fwd_bwd": "fwd_bwd", "bidirectional": "bidirectional"}


@dataclass
class LMConfig:
    vocab_size: int | None = None  # None: taken from the task when trained
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    mixer: str | list[str] = "softmax"  # one name, or one per layer (hybrids)
    mixer_options: dict = field(default_factory=dict)
    short_conv: str | list[str] = ""  # one placement for every layer, or one per layer ("" in a layer: none)
    conv_size: int = 4
    mlp_ratio: float = 4.0  # 0: no MLP (attention-only blocks)
    mode: str = "decoder"
    tie_embeddings: bool = True
    qk_init_scale: float = 1.0  # multiply the initial q and k projections (scores scale by its square; claim I1)
    positions: int = 0  # > 0: learned absolute position embeddings for sequences of up to this many tokens

    def mixers(self) -> list[str]:
        names = [self.mixer] * self.n_layers if isinstance(self.mixer, str) else list(self.mixer)
        if len(names) != self.n_layers:
            raise ValueError(f"model.mixer lists {len(names)} mixers for n_layers={self.n_layers}")
        for n in names:
            if n not in MIXERS:
                raise ValueError(f"model.mixer: unknown mixer {n!r}; valid names: {', '.join(sorted(MIXERS))}")
        return names

    def convs(self) -> list[str]:
        """The short-conv placement of each layer."""
        c = [self.short_conv] * self.n_layers if isinstance(self.short_conv, str) else list(self.short_conv)
        if len(c) != self.n_layers:
            raise ValueError(f"model.short_conv lists {len(c)} placements for n_layers={self.n_layers}")
        return c


class MLP(nn.Module):
    def __init__(self, d: int, ratio: float):
        super().__init__()
        hidden = max(1, int(d * ratio))
        self.up = nn.Linear(d, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.down(swiglu(self.up(x)))


class Block(nn.Module):
    def __init__(self, cfg: LMConfig, mixer_name: str, short_conv: str):
        super().__init__()
        opts = dict(cfg.mixer_options)
        if MIXERS[mixer_name].sees_future:
            opts["mask"] = MODE_MASK[cfg.mode]
        elif cfg.mode != "decoder":
            raise ValueError(f"model.mode={cfg.mode!r} needs a mixer that can look ahead (softmax, relu2_attn, "
                             f"identity_attn); {mixer_name!r} is recurrent and causal")
        self.norm1 = RMSNorm(cfg.d_model)
        self.mixer = build_mixer(mixer_name, cfg.d_model, cfg.n_heads, short_conv=short_conv,
                                 conv_size=cfg.conv_size, **opts)
        self.mlp = MLP(cfg.d_model, cfg.mlp_ratio) if cfg.mlp_ratio > 0 else None
        self.norm2 = RMSNorm(cfg.d_model) if self.mlp is not None else None

    def forward(self, x, prefix_len=None, capture=None):
        h = self.norm1(x)
        kw = {"prefix_len": prefix_len} if prefix_len is not None else {}
        if capture is not None:
            capture.append(self.mixer.attention_matrix(h, **kw).detach())
        x = x + self.mixer(h, **kw)
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x


class LM(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        check_positive_int("model.vocab_size", cfg.vocab_size)
        check_positive_int("model.n_layers", cfg.n_layers)
        check_choice("model.mode", cfg.mode, MODES)
        if not isinstance(cfg.positions, int) or cfg.positions < 0:
            raise ValueError(f"model.positions must be a whole number ≥ 0 (0: none), got {cfg.positions!r}")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        if cfg.positions:
            self.pos = nn.Embedding(cfg.positions, cfg.d_model)
            nn.init.normal_(self.pos.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg, m, c) for m, c in zip(cfg.mixers(), cfg.convs()))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        if cfg.qk_init_scale != 1.0:
            with torch.no_grad():
                for blk in self.blocks:
                    for name in ("q_proj", "k_proj"):
                        if hasattr(blk.mixer, name):
                            getattr(blk.mixer, name).weight.mul_(cfg.qk_init_scale)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, tokens: torch.Tensor, prefix_len=None, capture: list | None = None,
                at: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[batch, seq, vocab]``; with ``at`` (a bool mask ``[batch, seq]``) the logits of those positions
        only, ``[n, vocab]`` in row-major order. A task that scores a few positions of each sequence (MQAR's
        queries) then pays the head and its softmax for those alone: the rest of the network is unchanged."""
        if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long or tokens.ndim != 2:
            raise TypeError("tokens must be a LongTensor [batch, seq]")
        if at is not None and not (isinstance(at, torch.Tensor) and at.dtype == torch.bool and at.shape == tokens.shape):
            raise ValueError(f"at must be a bool mask shaped like tokens {tuple(tokens.shape)}, got "
                             f"{getattr(at, 'dtype', type(at).__name__)} {tuple(getattr(at, 'shape', ()))}")
        if self.cfg.mode in ("prefix", "fwd_bwd") and prefix_len is None:
            raise ValueError(f"model.mode={self.cfg.mode!r} needs prefix_len (the task's prefix length)")
        x = self.embed(tokens)
        if self.cfg.positions:
            if tokens.shape[1] > self.cfg.positions:
                raise ValueError(f"tokens has {tokens.shape[1]} positions; model.positions={self.cfg.positions} learned "
                                 "embeddings cover fewer")
            x = x + self.pos.weight[: tokens.shape[1]]
        for blk in self.blocks:
            x = blk(x, prefix_len=prefix_len if self.cfg.mode in ("prefix", "fwd_bwd") else None, capture=capture)
        if at is not None:
            x = x[at]  # the final norm and the head act per position
        return self.head(self.norm(x))

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, max_new: int, *, temperature: float = 0.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Continue ``tokens [b, t]`` by ``max_new`` tokens: greedy at ``temperature`` 0, else sampled from the
        softmax at that temperature (over the ``top_k`` most likely tokens when given). Each step reruns the
        whole sequence (exact for every mixer; the models here are small)."""
        if self.cfg.mode != "decoder":
            raise ValueError(f"generate needs a decoder-only model; this one has model.mode={self.cfg.mode!r}")
        if not (isinstance(max_new, int) and max_new >= 0):
            raise ValueError(f"max_new must be a whole number ≥ 0, got {max_new!r}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be ≥ 0, got {temperature!r}")
        if top_k is not None and not (isinstance(top_k, int) and top_k >= 1):
            raise ValueError(f"top_k must be a whole number ≥ 1 or None, got {top_k!r}")
        out = tokens
        for _ in range(max_new):
            logits = self.forward(out)[:, -1].float()
            if temperature == 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = logits.topk(min(top_k, logits.shape[-1]), -1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            out = torch.cat([out, nxt], 1)
        return out

    @torch.no_grad()
    def attention_matrices(self, tokens: torch.Tensor, prefix_len=None) -> list[torch.Tensor]:
        """The (real or implicit) ``[b, h, t, t]`` attention of every layer on ``tokens``."""
        mats: list[torch.Tensor] = []
        self.forward(tokens, prefix_len=prefix_len, capture=mats)
        return mats
