"""How an error message names a wrong argument: its type, and dtype and shape for arrays."""

from __future__ import annotations


def described(value) -> str:
    """'ndarray float64 (4, 4)', 'float 1.65', 'NoneType None': what the caller passed, briefly."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None:
        kind = f"{type(value).__name__} {dtype}" if dtype is not None else type(value).__name__
        return f"{kind} {tuple(shape)}"
    return f"{type(value).__name__} {value!r:.40}"
