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


def test_seeds_are_named_for_what_they_seed_and_the_old_keyword_warns():
    import torch

    from lmodp import Gaussian, Laplace
    from lmodp.audit import audit_mechanism
    from lmodp.search import SearchOptions
    from lmodp.train import FinetuneOptions, make_private

    with pytest.warns(DeprecationWarning, match="model_seed"):
        assert FinetuneOptions(seed=3).model_seed == 3
    assert FinetuneOptions.merged(None, model_seed=4).model_seed == 4
    with pytest.warns(DeprecationWarning, match="search_seed"):
        options = SearchOptions(seed=2)
    assert options.search_seed == 2 and options.seed is None and options == SearchOptions(search_seed=2)
    with pytest.raises(ValueError, match="search_seed= only"):
        SearchOptions(seed=2, search_seed=5)

    def first_batch(**seeds):
        data = {"input": torch.randn(32, 3), "labels": torch.randint(0, 2, (32,))}
        model = torch.nn.Linear(3, 2)
        _, _, loader = make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), data, mechanism=Gaussian(1.0),
                                    max_grad_norm=1.0, sample_rate=0.5, delta=1e-5, steps=2, **seeds)
        return next(iter(loader))["labels"].numel()

    with pytest.warns(DeprecationWarning, match="sampling_seed"):
        old = [first_batch(seed=s) for s in range(6)]
    assert old == [first_batch(sampling_seed=s) for s in range(6)]
    with pytest.warns(DeprecationWarning, match="audit_seed"):
        before = audit_mechanism(Laplace(1.0), delta=1e-5, samples=2_000, seed=1)
    assert before.epsilon_lower == audit_mechanism(Laplace(1.0), delta=1e-5, samples=2_000, audit_seed=1).epsilon_lower


def test_the_paper_file_readers_moved_to_the_paper_package_and_the_old_names_warn():
    from lmodp import LMO
    from lmodp.paper import lmo_from_paper_json, lmo_to_paper_json, paper_parameters

    data = paper_parameters(0.3)
    with pytest.warns(DeprecationWarning, match="lmodp.paper.lmo_from_paper_json"):
        old = LMO.from_paper_json(data, exponential="rate")
    assert old == lmo_from_paper_json(data, exponential="rate")
    with pytest.warns(DeprecationWarning, match="lmodp.paper.lmo_to_paper_json"):
        assert old.to_paper_json() == lmo_to_paper_json(old)
