"""Argument checks shared by the whole package.

Every public entry point validates its inputs with these helpers so that bad input always
raises a ``ValueError`` that names the argument and the allowed range, never a NaN, a silent
clamp or a wrong number.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

GEOMETRIES = ("scalar", "l2")


def _as_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    x = float(value)
    if math.isnan(x):
        raise ValueError(f"{name} must not be NaN")
    return x


def require_finite(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number."""
    x = _as_float(name, value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    return x


def require_positive(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise unless 0 < value < inf."""
    x = require_finite(name, value)
    if x <= 0.0:
        raise ValueError(f"{name} must be > 0, got {x}")
    return x


def require_nonnegative(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise unless 0 <= value < inf."""
    x = require_finite(name, value)
    if x < 0.0:
        raise ValueError(f"{name} must be >= 0, got {x}")
    return x


def require_delta(name: str, value: object) -> float:
    """A failure probability: raise unless 0 < value < 1."""
    x = _as_float(name, value)
    if not 0.0 < x < 1.0:
        raise ValueError(f"{name} must lie in the open interval (0, 1), got {x}")
    return x


def require_sample_rate(name: str, value: object) -> float:
    """A Poisson sampling rate: raise unless 0 < value <= 1."""
    x = _as_float(name, value)
    if not 0.0 < x <= 1.0:
        raise ValueError(f"{name} must lie in (0, 1], got {x}")
    return x


def require_count(name: str, value: object, minimum: int) -> int:
    """A count: raise unless it is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def require_steps(name: str, value: object) -> int:
    """A number of steps: raise unless it is an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        isinstance(value, Real) and float(value).is_integer()
    ):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    n = int(value)
    if n < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {n}")
    return n


def require_geometry(value: object) -> str:
    """The sensitivity geometry: one of ``GEOMETRIES``."""
    if value not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {GEOMETRIES}, got {value!r}")
    return str(value)


def require_geometries(geometry: object) -> tuple[str, ...]:
    """One geometry or a sequence of several, each one of ``GEOMETRIES``."""
    names = (geometry,) if isinstance(geometry, str) else tuple(geometry)
    if not names:
        raise ValueError(f"geometry must name at least one of {GEOMETRIES}")
    return tuple(require_geometry(g) for g in names)
