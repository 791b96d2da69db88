"""lmodp.accounting."""
