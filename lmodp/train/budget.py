"""Deprecated: the privacy ledger moved to :mod:`lmodp.train.ledger` (this alias goes in the next release)."""

import warnings

from lmodp.train.ledger import ON_EXHAUSTED, PrivacyBudgetExhausted, PrivacyLedger

warnings.warn("lmodp.train.budget is now lmodp.train.ledger", DeprecationWarning, stacklevel=2)

__all__ = ["ON_EXHAUSTED", "PrivacyBudgetExhausted", "PrivacyLedger"]
