"""lmodp.train."""
