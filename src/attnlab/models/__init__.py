"""Models built from mixers: :class:`LM` (decoder-only, prefix-LM, mixed forward/backward)."""

from .lm import LM, MODES, LMConfig
