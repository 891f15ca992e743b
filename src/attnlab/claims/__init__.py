"""The claim ledger (``shared/claims.md``) as code: statements, experiments, verdicts.

Importing this package registers every experiment module's claims in :data:`REGISTRY`.
"""

from . import concentration, decoder, decoding, information, recall, robustness, shortconv, ttt  # noqa: F401  (registration side effects)
from .registry import BUDGETS, REGISTRY, Budget, Claim, Evidence, Figure, experiment, verdict
from .runner import ClaimResult, run_claims
