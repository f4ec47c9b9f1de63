"""Array conventions shared by the theory modules: broadcast inputs, scalar or array out."""

from __future__ import annotations

from typing import Any, Union

import numpy as np
from numpy.typing import ArrayLike

FloatOrArray = Union[float, np.ndarray]


def as_out(a: np.ndarray) -> FloatOrArray:
    """0-d arrays become numpy float64 (a ``float``); others are returned as arrays."""
    a = np.asarray(a, dtype=float)
    return a[()] if a.ndim == 0 else a


def as_array(a: ArrayLike) -> np.ndarray:
    """``a`` as a float64 array."""
    return np.asarray(a, dtype=float)


def require(name: str, value: Any, protocol: str) -> np.ndarray:
    """``value`` as an array, or ValueError when a protocol needs it and it is None."""
    if value is None:
        raise ValueError(f"protocol {protocol!r} requires {name}=...")
    return as_array(value)


def check_d(d: ArrayLike) -> np.ndarray:
    """``d`` as an array, or ValueError when some d < 2."""
    d = as_array(d)
    if np.any(d < 2):
        raise ValueError("the VMF model needs d >= 2 (a sphere S^{d-1} of dimension >= 1)")
    return d
