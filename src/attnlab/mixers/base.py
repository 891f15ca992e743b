"""The one abstract token mixer and the registry that builds mixers by name.

A mixer maps ``x [b, t, c]`` to ``y [b, t, c]``. Every mixer is "values mixed by a matrix":
``pre_output(x) = attention_matrix(x) @ values(x)`` per head, followed by the output projection.
For softmax attention the matrix is real; for the linear family it is implicit (the output is
linear in ``v`` once q, k and the gates are fixed). Diagnostics use that one code path.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
import torch.nn as nn

from ..checks import check_positive_int, check_tensor
from ..ops.conv import short_conv

Cache = dict  # per-mixer decoding cache, filled in place by forward(x, cache=...)


class ShortConv(nn.Module):
    """Learnable causal depthwise convolution over ``[b, t, c]`` (post 11320's short conv).

    ``activation="silu"`` follows flash-linear-attention's ``ShortConvolution`` default.
    """

    def __init__(self, channels: int, kernel_size: int = 4, activation: str | None = "silu"):
        super().__init__()
        check_positive_int("conv_size", kernel_size)
        if activation not in (None, "silu"):
            raise ValueError(f"conv_activation must be None or 'silu', got {activation!r}")
        self.kernel_size = kernel_size
        self.activation = activation
        self.weight = nn.Parameter(torch.empty(channels, kernel_size))
        nn.init.uniform_(self.weight, -1 / math.sqrt(kernel_size), 1 / math.sqrt(kernel_size))

    def forward(self, x: torch.Tensor, cache: Cache | None = None, key: str = "") -> torch.Tensor:
        if cache is None:
            return short_conv(x, self.weight, activation=self.activation)
        y, cache[key] = short_conv(x, self.weight, cache=cache.get(key), output_cache=True, activation=self.activation)
        return y


class Mixer(nn.Module, ABC):
    """Abstract token mixer. Subclasses implement :meth:`features`, :meth:`mix` and :meth:`matrix`.

    Args:
        d_model: model width ``c``.
        n_heads: number of heads ``h``; the head dim is ``d_model // n_heads`` unless ``head_dim``.
        short_conv: any subset of ``"qkv"``: a short causal conv after those projections.
        conv_size: kernel size of the short conv (default 4).
        conv_activation: ``"silu"`` (default, as flash-linear-attention) or None.
    """

    name: str = ""
    causal: bool = True  # can it run left to right with a cache?
    # can it attend to later tokens (it takes a ``mask`` such as "prefix" or "bidirectional")? Models
    # ask this to decide whether a mode other than decoder-only is possible with this mixer.
    sees_future: bool = False
    # Decoding with a cache: ``forward(x, cache={})`` then one token at a time must equal one full forward.
    # A mixer that keeps its own cache (a KV cache, a recurrent state) sets this and reads and fills
    # ``cache`` in ``mix``. Otherwise (the default) ``mix`` always receives every token's features so far
    # with ``cache=None`` (the base class keeps them in ``cache["features"]``, time on dim 1) and only the
    # new positions are returned: correct for any causal mixer, at the cost of recomputing the past.
    keeps_cache: bool = False

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        head_dim: int | None = None,
        short_conv: str = "",
        conv_size: int = 4,
        conv_activation: str | None = "silu",
    ):
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("n_heads", n_heads)
        if head_dim is None:
            if d_model % n_heads:
                raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads}), or pass head_dim")
            head_dim = d_model // n_heads
        check_positive_int("head_dim", head_dim)
        if not isinstance(short_conv, str) or set(short_conv) - set("qkv") or len(set(short_conv)) != len(short_conv):
            raise ValueError(f"short_conv must be a subset of 'qkv' such as '', 'k' or 'qkv'; got {short_conv!r}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, head_dim
        self.short_conv = "".join(c for c in "qkv" if c in short_conv)
        inner = n_heads * head_dim
        self.q_proj = nn.Linear(d_model, inner, bias=False)
        self.k_proj = nn.Linear(d_model, inner, bias=False)
        self.v_proj = nn.Linear(d_model, inner, bias=False)
        self.o_proj = nn.Linear(inner, d_model, bias=False)
        self.convs = nn.ModuleDict({c: ShortConv(inner, conv_size, conv_activation) for c in self.short_conv})

    # -- the three pieces a subclass provides -------------------------------------------
    def project(self, x: torch.Tensor, cache: Cache | None = None) -> dict[str, torch.Tensor]:
        """Projections with their short convs: ``q, k, v [b, t, h, d]``. Subclasses add gates."""
        out = {}
        for name, proj in (("q", self.q_proj), ("k", self.k_proj), ("v", self.v_proj)):
            y = proj(x)
            if name in self.convs:
                y = self.convs[name](y, cache, "conv_" + name)
            out[name] = y.unflatten(-1, (self.n_heads, self.head_dim))  # (b, t, h, d)
        return out

    @abstractmethod
    def mix(self, f: dict[str, torch.Tensor], cache: Cache | None, **kwargs) -> torch.Tensor:
        """Mix the features ``f`` of :meth:`features` into ``o [b, t, h, d_v]``. ``cache`` is None unless
        the mixer sets :attr:`keeps_cache` (see there)."""

    @abstractmethod
    def matrix(self, f: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
        """The (real or implicit) ``[b, h, t, t]`` matrix with ``o = A v``."""

    def features(self, x: torch.Tensor, cache: Cache | None = None) -> dict[str, torch.Tensor]:
        """Everything the mix needs, computed from ``x``; by default :meth:`project`."""
        return self.project(x, cache)

    # -- the public interface -----------------------------------------------------------
    def _check_x(self, x: torch.Tensor) -> None:
        check_tensor("x", x, 3, "[batch, seq, d_model]")
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x's last dim must be d_model={self.d_model}, got shape {tuple(x.shape)}")

    def pre_output(self, x: torch.Tensor, cache: Cache | None = None, **kwargs) -> torch.Tensor:
        """``o [b, t, h, d_v]``: the mixed values before any output gate, norm or projection."""
        self._check_x(x)
        if cache is not None and not isinstance(cache, dict):
            raise TypeError(f"cache must be a dict (start with {{}}), got {type(cache).__name__}")
        if x.shape[1] == 0:  # nothing to mix (and a cache stays as it was)
            return x.new_zeros(x.shape[0], 0, self.n_heads, self.head_dim)
        f = self.features(x, cache)
        if cache is None or self.keeps_cache:
            return self.mix(f, cache, **kwargs)
        past = cache.get("features")
        if past is not None:
            f = {k: torch.cat([past[k], f[k]], 1) for k in f}
        cache["features"] = f
        return self.mix(f, None, **kwargs)[:, -x.shape[1]:]

    def output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """From ``o [b, t, h, d_v]`` to ``y [b, t, c]``; subclasses may add a gate or a norm."""
        return self.o_proj(o.flatten(-2))

    def forward(self, x: torch.Tensor, cache: Cache | None = None, **kwargs) -> torch.Tensor:
        """``x [b, t, c] -> y [b, t, c]``. With ``cache`` (a dict, ``{}`` at the start), it goes on
        from the tokens fed before and updates the cache in place, so decoding one token at a time
        equals the full forward."""
        return self.output(self.pre_output(x, cache, **kwargs), x)

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """``v [b, t, h, d_v]`` exactly as the matrix of :meth:`attention_matrix` is applied to."""
        self._check_x(x)
        return self.features(x)["v"]

    def attention_matrix(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """``A [b, h, t, t]`` with ``pre_output(x) = A @ values(x)`` per head."""
        self._check_x(x)
        return self.matrix(self.features(x), **kwargs)

    def extra_repr(self) -> str:
        conv = f", short_conv={self.short_conv!r}" if self.short_conv else ""
        return f"d_model={self.d_model}, n_heads={self.n_heads}, head_dim={self.head_dim}{conv}"


MIXERS: dict[str, Callable[..., Mixer]] = {}


def register_mixer(name: str):
    """Class decorator: ``@register_mixer("mine")`` makes ``build_mixer("mine", ...)`` work."""

    def deco(cls):
        if name in MIXERS and MIXERS[name] is not cls:
            raise ValueError(f"a mixer called {name!r} is already registered ({MIXERS[name].__name__})")
        MIXERS[name] = cls
        cls.name = name
        return cls

    return deco


def build_mixer(name: str, d_model: int, n_heads: int, short_conv: str = "", conv_size: int = 4, **options) -> Mixer:
    """Build a registered mixer by name, e.g. ``build_mixer("deltanet", d_model=64, n_heads=4, short_conv="k")``."""
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; valid names: {', '.join(sorted(MIXERS))}")
    try:
        return MIXERS[name](d_model, n_heads, short_conv=short_conv, conv_size=conv_size, **options)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            bad = str(e).split("argument")[-1].strip()
            raise TypeError(f"mixer {name!r} has no option {bad}") from None
        raise
