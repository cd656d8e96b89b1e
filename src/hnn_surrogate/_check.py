"""One place for argument checks, so that every error reads the same."""

from __future__ import annotations



def check_option(name: str, value, allowed) -> None:
    """Raise ValueError naming ``name`` if ``value`` is not one of ``allowed``."""
    if value not in allowed:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}"
        )


def check_positive(name: str, value, *, allow_zero: bool = False) -> None:
    """Raise ValueError naming ``name`` unless ``value`` > 0 (or >= 0)."""
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}; got {value!r}")
