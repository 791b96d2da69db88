"""Names that moved keep working for one release, with a DeprecationWarning that says where they went."""

from __future__ import annotations

import importlib
import sys

import pytest

pytest.importorskip("torch")


@pytest.mark.parametrize("old, new, names", [
    ("lmodp.train.budget", "lmodp.train.ledger", ["PrivacyLedger", "PrivacyBudgetExhausted"]),
    ("lmodp.train.per_sample", "lmodp.train.vmap_clipping", ["PerSampleGradients", "VmapClipping"]),
    ("lmodp.train.per_sample", "lmodp.train.batches", ["model_inputs", "batch_size_of"]),
    ("lmodp.train.hf_compat", "lmodp.train.vmap_attention", ["make_vmap_safe"]),
])
def test_a_moved_module_warns_and_still_gives_its_names(old, new, names):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    current = importlib.import_module(new)
    for name in names:
        assert getattr(module, name) is getattr(current, name)
