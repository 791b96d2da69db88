"""Dominated discretisations: the law's hockey-stick curve is below the exact curve of the atoms
at every x >= 0 (evaluated by direct summation), symmetric laws are genuine and symmetric, and
the deficit is second order in the grid step."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lmodp.accounting.pld.optimistic import curve_of_atoms, law_below, symmetric_law_below


def curve(losses: np.ndarray, masses: np.ndarray, x: np.ndarray) -> np.ndarray:
    """H(x) = Σ μ_i (1 − x e^{−ℓ_i})_+ by direct summation."""
    return np.sum(masses[None, :] * np.maximum(1.0 - x[:, None] * np.exp(-losses[None, :]), 0.0), axis=1)


def on_grid(losses: np.ndarray, masses: np.ndarray, h: float):
    cells = np.ceil(losses / h).astype(np.int64) - 1
    excess = np.clip(losses - cells * h, 0.0, h)
    return curve_of_atoms(cells, excess, masses, h, first_cell=int(cells.min()))


PROBES = np.concatenate([[0.0], np.exp(np.linspace(-3.0, 3.0, 2001))])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    atoms=st.integers(1, 300),
    h=st.sampled_from([1e-3, 0.01, 0.1]),
)
def test_law_below_is_below_the_curve(seed, atoms, h):
    rng = np.random.default_rng(seed)
    losses = rng.normal(0.3, 0.8, atoms)
    masses = rng.dirichlet(np.ones(atoms)) * rng.uniform(0.5, 1.0)
    law = law_below(on_grid(losses, masses, h), float(masses.sum()))
    assert law.infinity_mass == 0.0 and np.all(law.probs >= 0.0)
    exact = curve(losses, masses, PROBES)
    got = curve(law.losses, law.probs, PROBES)
    assert np.all(got <= exact + 1e-13)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), atoms=st.integers(1, 200), h=st.sampled_from([1e-3, 0.01, 0.1]))
def test_symmetric_law_is_genuine_symmetric_and_below(seed, atoms, h):
    rng = np.random.default_rng(seed)
    # a symmetric genuine pair: w at ℓ > 0, w e^{−ℓ} at −ℓ, the rest at 0
    positive = np.abs(rng.normal(0.0, 1.0, atoms)) + 1e-3
    w = rng.dirichlet(np.ones(atoms)) * rng.uniform(0.2, 1.0) / 2.0
    losses = np.concatenate([positive, -positive, [0.0]])
    masses = np.concatenate([w, w * np.exp(-positive), [1.0 - float(np.sum(w * (1 + np.exp(-positive))))]])
    cells = np.ceil(positive / h).astype(np.int64) - 1
    law = symmetric_law_below(curve_of_atoms(cells, np.clip(positive - cells * h, 0.0, h), w, h, first_cell=0))
    assert abs(law.probs.sum() - 1.0) <= 1e-12 and np.all(law.probs >= 0.0)
    np.testing.assert_allclose(law.probs[::-1], law.probs * np.exp(-law.losses), rtol=1e-12, atol=1e-300)
    assert np.all(curve(law.losses, law.probs, PROBES) <= curve(losses, masses, PROBES) + 1e-13)


def test_deficit_is_second_order_in_the_grid_step():
    # a smooth law (many atoms spread like a normal): halving h divides the largest deficit by ~4
    rng = np.random.default_rng(1)
    losses = rng.normal(0.5, 1.0, 20000)
    masses = np.full(losses.size, 1.0 / losses.size)
    exact = curve(losses, masses, PROBES)
    deficits = []
    for h in (0.04, 0.02, 0.01):
        law = law_below(on_grid(losses, masses, h), 1.0)
        deficits.append(float(np.max(exact - curve(law.losses, law.probs, PROBES))))
    assert deficits[1] < deficits[0] / 3.0 and deficits[2] < deficits[1] / 3.0
