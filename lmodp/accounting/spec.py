"""One value for the settings of a run as an accountant sees them: :class:`RunSpec`.

``steps`` releases, each on a Poisson sample of rate ``sample_rate``, of a query with the given
``sensitivity`` in the given ``geometry``, judged at failure probability ``delta``. Every function
that accounts a run (:func:`lmodp.epsilon`, :func:`lmodp.epsilon_interval`, the search and
calibration, training, the command line) takes a ``RunSpec`` as ``run`` or the same settings as
keywords; a keyword given together with ``run`` replaces that setting (:func:`run_spec`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from collections.abc import Sequence
from typing import Any

from lmodp._options import Settings
from lmodp._validation import (
    GEOMETRIES,
    require_delta,
    require_geometries,
    require_geometry,
    require_positive,
    require_sample_rate,
    require_steps,
)

#: The settings a run needs; geometry and sensitivity have defaults.
REQUIRED = ("sample_rate", "steps", "delta")


@dataclass(frozen=True)
class RunSpec(Settings):
    """``steps`` Poisson-subsampled releases (rate ``sample_rate``) of a query with L2 or scalar
    ``sensitivity`` in ``geometry``, accounted at ``delta``. Each setting is checked on
    construction (``ValueError`` naming the bad one).

    ``geometry``: ``"l2"`` (the default: a vector release such as a clipped gradient with noise
    on each coordinate, what DP-SGD does; its ε is at least the scalar one) or ``"scalar"`` (a
    one-dimensional query). ``sensitivity``: Δ, or the clip norm C in l2.
    """

    sample_rate: float
    steps: int
    delta: float
    geometry: str = "l2"
    sensitivity: float = 1.0

    def __post_init__(self) -> None:
        checked = {
            "sample_rate": require_sample_rate("sample_rate", self.sample_rate),
            "steps": require_steps("steps", self.steps),
            "delta": require_delta("delta", self.delta),
            "geometry": require_geometry(self.geometry),
            "sensitivity": require_positive("sensitivity", self.sensitivity),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a dict (the keywords this spec stands for)."""
        return asdict(self)


def run_spec(
    run: RunSpec | None = None,
    *,
    sample_rate: float | None = None,
    steps: int | None = None,
    delta: float | None = None,
    geometry: str | None = None,
    sensitivity: float | None = None,
) -> RunSpec:
    """``run`` with every setting given here (not None) in place of its own; without ``run``, the
    :class:`RunSpec` of these settings (``sample_rate``, ``steps`` and ``delta`` required)."""
    given = {
        name: value
        for name, value in (
            ("sample_rate", sample_rate), ("steps", steps), ("delta", delta), ("geometry", geometry), ("sensitivity", sensitivity),
        )
        if value is not None
    }
    if run is None:
        missing = [name for name in REQUIRED if name not in given]
        if missing:
            raise ValueError(f"give run=RunSpec(...) or the settings {', '.join(missing)}")
        return RunSpec(**given)
    if not isinstance(run, RunSpec):
        hint = " (delta is keyword-only: delta=...)" if isinstance(run, (int, float)) and not isinstance(run, bool) else ""
        raise ValueError(f"run must be an lmodp RunSpec, got {type(run).__name__}{hint}")
    return run.replace(**given) if given else run


def run_and_geometries(
    run: RunSpec | None, geometry: str | Sequence[str] | None, **settings: Any
) -> tuple[RunSpec, tuple[str, ...]]:
    """The run and the geometries of a table or figure over one or several geometries:
    ``geometry`` (one name or several) or, when None, the geometry of ``run`` if given, else both.
    The run is :func:`run_spec` of ``run`` and ``settings``, in the first of those geometries."""
    if geometry is None:
        geometries = (run.geometry,) if isinstance(run, RunSpec) else GEOMETRIES
    else:
        geometries = require_geometries(geometry)
    return run_spec(run, geometry=geometries[0], **settings), geometries
