"""lmodp.search."""
