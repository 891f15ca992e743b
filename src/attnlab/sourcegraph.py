"""attnlab's own import graph, read from the source: which modules a module reaches, and a hash of them.

The graph is read with :mod:`ast` (imports inside functions included) and followed transitively.
``from pkg import name`` reaches the submodule ``pkg.name`` where there is one, and the package's
``__init__`` (and what it imports) where ``name`` is defined there. A package's ``__init__`` is not
counted merely because a submodule is imported: attnlab's ``__init__`` files only hand names on,
except ``claims/__init__``, which imports every experiment to register it. Compiled kernels' C sources
count with the module that builds them.

Two caches key on it: a claim's result (:mod:`attnlab.claims.keys`: the code its experiment reaches) and
a trained run (:mod:`attnlab.train.memo`: the code the trainer reaches), so an edit invalidates exactly
what it can change and nothing else.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import attnlab

PACKAGE_ROOT = Path(attnlab.__file__).resolve().parent
# modules that load non-Python sources: those sources count as the module's own code
DATA_SOURCES = {"attnlab.ops.native": ("ops/csrc/*.c", "ops/csrc/*.h")}


def _module_file(root: Path, name: str) -> Path | None:
    """``attnlab.a.b`` → ``root/a/b.py`` or ``root/a/b/__init__.py`` (None outside the package)."""
    parts = name.split(".")
    if parts[0] != "attnlab":
        return None
    base = root.joinpath(*parts[1:])
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _module_name(root: Path, f: Path) -> str:
    rel = f.relative_to(root).with_suffix("")
    parts = ["attnlab", *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(root: Path, f: Path, name: str | None = None) -> set[str]:
    """The attnlab modules that ``f`` (the module ``name``; by default its name under ``root``) imports,
    anywhere in the file, as dotted names."""
    me = name or _module_name(root, f)
    package = me if f.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(f.read_text(), str(f))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = {f"{mod}.{a.name}" for a in node.names if _module_file(root, f"{mod}.{a.name}")}
            out.update(subs)
            if len(subs) < len(node.names):  # some name is defined in (or handed on by) the package itself
                out.add(mod)
    return {m for m in out if _module_file(root, m)}


def closure(root: Path, module: str) -> list[Path]:
    """Every attnlab source file that ``module`` reaches through imports (itself included), sorted."""
    return _reach(root, [module])


def _reach(root: Path, todo: list[str]) -> list[Path]:
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += sorted(imports_of(root, _module_file(root, m)) - seen)
    files = {_module_file(root, m) for m in seen}
    for m in seen & set(DATA_SOURCES):
        files.update(f for pattern in DATA_SOURCES[m] for f in root.glob(pattern))
    return sorted(files)


def code_hash(root: Path, module: str) -> str:
    """Hash of the files ``module`` reaches. A module outside attnlab (an experiment of your own)
    counts with its own file and the attnlab modules it reaches."""
    h = hashlib.sha256()
    files = closure(root, module) if _module_file(root, module) else []
    if not files:
        import importlib

        own = Path(importlib.import_module(module).__file__)
        h.update(own.read_bytes())
        files = _reach(root, sorted(imports_of(root, own, module)))
    for f in files:
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()
