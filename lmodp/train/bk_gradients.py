r"""Per-example gradients kept in factored form, and what book-keeping clipping needs from them.

In a forward/backward pass over a batch of B examples, a layer that multiplies its input by a
weight matrix gives example b the weight gradient

.. math:: g_b = \sum_t r_{b,t} \otimes c_{b,t} \qquad (\text{shape } R \times C),

a sum over the positions t of outer products: for ``nn.Linear`` (weight ``out × in``) the rows are
the output gradients G and the columns the inputs A (:math:`g_b = G_b^\top A_b`); for GPT-2's
``Conv1D`` (weight ``in × out``) rows and columns swap; for ``nn.Embedding`` the rows are one-hot
vectors of the token ids (:math:`g_b` scatters :math:`G_b[t]` into row :math:`x_b[t]`).
:class:`OuterProductSum` holds ``(rows, cols)`` without forming :math:`g_b`;
:class:`PerExampleTensor` holds an already materialised :math:`g_b` (biases, norms, anything else).

Book-keeping clipping (Bu, Wang, Zha, Karypis, ICML 2023, "Differentially Private Optimization on
Large Model at Small Cost") needs two things from these factors:

* **per-example squared norms**. Where a parameter has several uses u in one forward pass (tied
  weights), example b's gradient is :math:`\sum_u g_{u,b}` and
  :math:`\lVert\sum_u g_{u,b}\rVert^2 = \sum_{u,v}\langle g_{u,b}, g_{v,b}\rangle`. For two
  outer-product sums the *ghost norm* identity (Li, Tramèr, Liang, Hashimoto, ICLR 2022;
  Goodfellow 2015 for T = 1) gives

  .. math:: \langle g_{u,b}, g_{v,b}\rangle = \sum_{s,t} (r_{u,b,s}\cdot r_{v,b,t})\,(c_{u,b,s}\cdot c_{v,b,t}),

  in :math:`O(T^2(R+C))` per example instead of :math:`O(T R C)` to materialise :math:`g_b`; with
  one-hot rows, :math:`r_{u,b,s}\cdot r_{v,b,t} = [x_{u,b,s} = x_{v,b,t}]` and, against dense rows,
  a gather. :func:`squared_norms` picks, per parameter, ghost or materialisation by cost.
* **the clipped sum** :math:`\sum_b \kappa_b g_b` with the per-example clip factors
  :math:`\kappa_b`: for an outer-product sum this is one matrix product
  :math:`\mathrm{rows}^\top (\kappa \odot \mathrm{cols})` over all (b, t) (an ``index_add`` for
  one-hot rows), the same work as the non-private weight gradient, and no second backward pass.

Arithmetic is in float32, or float64 for float64 models, whatever precision the forward used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32, or wider when ``dtype`` is wider (float64 models stay float64)."""
    return torch.promote_types(dtype, torch.float32)


@dataclass(frozen=True)
class OuterProductSum:
    """Per-example gradients g_b = Σ_t rows[b, t] ⊗ cols[b, t] of one use of a 2-D parameter.

    ``cols`` has shape (B, T, C). ``rows`` is dense (B, T, R), or, when ``one_hot`` is True, the
    long tensor (B, T) of row indices of one-hot vectors of length ``num_rows`` (embeddings).
    """

    rows: torch.Tensor
    cols: torch.Tensor
    num_rows: int
    one_hot: bool = False

    @property
    def positions(self) -> int:
        return int(self.cols.shape[1])

    @property
    def num_cols(self) -> int:
        return int(self.cols.shape[2])

    def materialize(self) -> torch.Tensor:
        """g_b for every example, shape (B, R, C)."""
        batch = self.cols.shape[0]
        if not self.one_hot:
            return torch.bmm(self.rows.transpose(1, 2), self.cols)
        out = self.cols.new_zeros(batch * self.num_rows, self.num_cols)
        flat_rows = (self.rows + self.num_rows * torch.arange(batch, device=self.rows.device).view(-1, 1)).reshape(-1)
        out.index_add_(0, flat_rows, self.cols.reshape(-1, self.num_cols))
        return out.view(batch, self.num_rows, self.num_cols)

    def weighted_sum(self, weights: torch.Tensor) -> torch.Tensor:
        """Σ_b weights[b]·g_b, shape (R, C): one matrix product (one index_add for one-hot rows)."""
        weighted = (self.cols * weights.view(-1, 1, 1)).reshape(-1, self.num_cols)
        if self.one_hot:
            out = weighted.new_zeros(self.num_rows, self.num_cols)
            return out.index_add_(0, self.rows.reshape(-1), weighted)
        return self.rows.reshape(-1, self.num_rows).T @ weighted


@dataclass(frozen=True)
class PerExampleTensor:
    """Materialised per-example gradients of one use of a parameter, shape (B, *param.shape)."""

    values: torch.Tensor

    def materialize(self) -> torch.Tensor:
        return self.values

    def weighted_sum(self, weights: torch.Tensor) -> torch.Tensor:
        return torch.tensordot(weights, self.values, dims=1)


Factor = OuterProductSum | PerExampleTensor


class GramCache:
    """Batched Gram matrices x_b x'_bᵀ, each computed once per forward pass.

    Layers that read the same input (an attention block's query, key and value projections)
    share its Gram matrix. Tensors are identified by storage, shape, strides and version, which
    is safe while the factors holding them are alive (for one forward pass).
    """

    def __init__(self) -> None:
        self._grams: dict[tuple, torch.Tensor] = {}

    @staticmethod
    def _key(t: torch.Tensor) -> tuple:
        return (t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, t._version)

    def gram(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, T_x, T_y) = bmm(x, yᵀ)."""
        key = (self._key(x), self._key(y))
        if key not in self._grams:
            self._grams[key] = torch.bmm(x, y.transpose(1, 2))
        return self._grams[key]


def _row_products(u: OuterProductSum, v: OuterProductSum, cache: GramCache) -> torch.Tensor:
    """(B, T_u, T_v): r_{u,b,s} · r_{v,b,t}, for dense or one-hot rows."""
    if u.one_hot and v.one_hot:
        return (u.rows.unsqueeze(2) == v.rows.unsqueeze(1)).to(u.cols.dtype)
    if v.one_hot:
        index = v.rows.unsqueeze(1).expand(-1, u.positions, -1)
        return torch.gather(u.rows, 2, index)
    if u.one_hot:
        return _row_products(v, u, cache).transpose(1, 2)
    return cache.gram(u.rows, v.rows)


def ghost_inner_products(u: OuterProductSum, v: OuterProductSum, cache: GramCache | None = None) -> torch.Tensor:
    """⟨g_{u,b}, g_{v,b}⟩ for every example b, without forming g: Σ_{s,t} (r_s·r'_t)(c_s·c'_t)."""
    cache = cache or GramCache()
    return (_row_products(u, v, cache) * cache.gram(u.cols, v.cols)).sum(dim=(1, 2))


def _ghost_is_cheaper(factor: OuterProductSum) -> bool:
    """Ghost costs T²(R + C) per example, materialising T·R·C (and B·R·C memory): compare."""
    if factor.one_hot:
        return True
    t = factor.positions
    return t * (factor.num_rows + factor.num_cols) <= factor.num_rows * factor.num_cols


def squared_norms(uses: list[Factor], cache: GramCache | None = None) -> torch.Tensor:
    """‖Σ_u g_{u,b}‖² for every example b, over the uses of ONE parameter in a forward pass.

    All outer-product sums: ghost inner products over every pair (u, v), unless materialising is
    cheaper (a single dense use with T(R + C) > RC). Any materialised use: everything materialised.
    """
    if all(isinstance(u, OuterProductSum) for u in uses) and (len(uses) > 1 or _ghost_is_cheaper(uses[0])):
        n = len(uses)
        terms = [
            (1.0 if i == j else 2.0) * ghost_inner_products(uses[i], uses[j], cache)  # type: ignore[arg-type]
            for i in range(n)
            for j in range(i, n)
        ]
        return torch.stack(terms).sum(dim=0)
    summed = uses[0].materialize()
    for u in uses[1:]:
        summed = summed + u.materialize()
    return summed.flatten(start_dim=1).square().sum(dim=1)


def clipped_sum(uses: list[Factor], factors: torch.Tensor) -> torch.Tensor:
    """Σ_b κ_b Σ_u g_{u,b}: the clipped gradient sum of one parameter (shape of the parameter's
    per-use gradient: (R, C) for outer-product sums)."""
    total = uses[0].weighted_sum(factors)
    for u in uses[1:]:
        total.add_(u.weighted_sum(factors))
    return total
