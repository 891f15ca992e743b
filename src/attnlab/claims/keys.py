"""Cache keys that follow the code: a claim's key hashes every attnlab module its experiment imports.

The import graph is :mod:`attnlab.sourcegraph`'s, followed from the experiment's module (counting
``claims/__init__``, which imports every experiment, would tie every claim to every other). Editing a
module therefore changes the keys of exactly the claims whose experiments reach it, and of no other.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path

from ..sourcegraph import PACKAGE_ROOT, closure, code_hash, imports_of
from .registry import Budget, Claim

__all__ = ["PACKAGE_ROOT", "claim_key", "closure", "code_hash", "imports_of"]


@functools.cache
def _code_hash_now(module: str) -> str:
    # computed once per process, at the first key: a file edited while a ledger runs must not pass
    # for the code that ran
    return code_hash(PACKAGE_ROOT, module)


def claim_key(claim: Claim, budget: Budget, root: Path | None = None) -> str:
    """Hash of the code the claim's experiment reaches and of the budget (pending claims: the budget)."""
    h = hashlib.sha256()
    if claim.run is not None:
        module = claim.run.__module__
        try:
            h.update((_code_hash_now(module) if root is None else code_hash(root, module)).encode())
        except (ImportError, TypeError, AttributeError):  # defined outside any module file (exec, a notebook)
            import marshal

            h.update(marshal.dumps(claim.run.__code__))
    h.update(repr(dataclasses.astuple(budget)).encode())
    return h.hexdigest()[:16]
