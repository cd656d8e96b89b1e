"""What an objective's config must hold, checked without torch: Snakemake's main
process checks every objective before any job (``config.validate_config``), and
the ``fit`` command its own. The functions themselves are ``objectives.OBJECTIVES``."""

from __future__ import annotations

import math

from .. import CELL_TYPES

OBJECTIVE_KEYS = {
    "band_share": ("band", "total"),
    "band_ratio": ("band", "reference"),
    "band_contrast": ("band", "below", "above"),
    "peak_frequency": ("target_hz", "total", "temperature"),
}
"""kind -> the config keys it needs (``objectives`` documents each kind)."""

BAND_KEYS = ("band", "total", "reference", "below", "above")
"""Objective keys that hold a band, [low, high] Hz."""

WINDOW_COMBINE = ("mean", "min")
"""How the scores of a windowed objective's windows become one (``window_combine``)."""


def check_objective(cfg: dict, *, where: str = "objective", bin_ms: float | None = None) -> None:
    """Refuse an objective config with an unknown kind, a missing key or a bad band."""
    kind = cfg.get("kind")
    if kind not in OBJECTIVE_KEYS:
        raise ValueError(f"{where}.kind: {kind!r} is not one of {', '.join(OBJECTIVE_KEYS)}")
    nyquist = math.inf if bin_ms is None else 500.0 / bin_ms
    for key in OBJECTIVE_KEYS[kind]:
        if key not in cfg:
            raise ValueError(f"{where}.{key}: missing (a {kind} objective needs "
                             f"{', '.join(OBJECTIVE_KEYS[kind])})")
    for key in BAND_KEYS:
        if key in OBJECTIVE_KEYS[kind]:
            lo, hi = cfg[key]
            if not 0 <= lo < hi <= min(500.0, nyquist):
                raise ValueError(f"{where}.{key}: [{lo}, {hi}] Hz is not a band within "
                                 f"0-{min(500.0, nyquist):g} Hz")
    if kind == "peak_frequency" and not (cfg["total"][0] <= cfg["target_hz"] <= cfg["total"][1]):
        raise ValueError(f"{where}.target_hz: {cfg['target_hz']} Hz is outside total "
                         f"{cfg['total']}")
    if kind == "peak_frequency" and cfg["temperature"] <= 0:
        raise ValueError(f"{where}.temperature: must be > 0")
    if "window_ms" in cfg:
        window = cfg["window_ms"]
        if isinstance(window, bool) or not isinstance(window, (int, float)) or window <= 0:
            raise ValueError(f"{where}.window_ms: {window!r} must be a positive number of ms")
        # the window's spectrum: frequencies k / (n bin) for n bins per window
        n = round(window / bin_ms) if bin_ms is not None else None
        if n is not None and n < 8:
            raise ValueError(f"{where}.window_ms: {window:g} ms is {n} bins of {bin_ms:g} ms; "
                             "a window's spectrum needs at least 8")
        span_s = (n * bin_ms if n is not None else window) / 1000.0
        for key in BAND_KEYS:
            if key in OBJECTIVE_KEYS[kind]:
                lo, hi = cfg[key]
                first = max(1, math.ceil(lo * span_s) - 1)
                if not any(lo <= k / span_s <= hi for k in range(first, math.floor(hi * span_s) + 2)):
                    raise ValueError(
                        f"{where}.{key}: [{lo}, {hi}] Hz holds no frequency of a "
                        f"{window:g} ms window's spectrum (every {1 / span_s:g} Hz); "
                        f"widen the band or lengthen window_ms")
    if "window_combine" in cfg:
        if "window_ms" not in cfg:
            raise ValueError(f"{where}.window_combine: needs window_ms")
        if cfg["window_combine"] not in WINDOW_COMBINE:
            raise ValueError(f"{where}.window_combine: {cfg['window_combine']!r} is not one "
                             f"of {', '.join(WINDOW_COMBINE)}")
    for t, band in (cfg.get("rates") or {}).items():
        if t not in CELL_TYPES:
            raise ValueError(f"{where}.rates: {t!r} is not a cell type "
                             f"({', '.join(CELL_TYPES)})")
        lo, hi = band
        if not 0 <= lo < hi:
            raise ValueError(f"{where}.rates.{t}: [{lo}, {hi}] Hz must satisfy 0 <= low < high")
    if "rate_window_ms" in cfg:
        window = cfg["rate_window_ms"]
        if not cfg.get("rates"):
            raise ValueError(f"{where}.rate_window_ms: needs rates")
        if isinstance(window, bool) or not isinstance(window, (int, float)) or window <= 0:
            raise ValueError(f"{where}.rate_window_ms: {window!r} must be a positive number of ms")
        if bin_ms is not None and round(window / bin_ms) < 1:
            raise ValueError(f"{where}.rate_window_ms: {window:g} ms is under one "
                             f"{bin_ms:g} ms bin")
    if "rate_weight" in cfg and not cfg["rate_weight"] > 0:
        raise ValueError(f"{where}.rate_weight: must be > 0")


def best_index(objective) -> int:
    """Row of ``objective`` (shape (n_evaluations, n_seeds)) with the highest mean over
    seeds: the fit's step or the search's evaluation that is kept. A row with a NaN
    (an objective undefined for a seed's run) is never chosen; ValueError when no row
    is finite."""
    import numpy as np

    mean = np.asarray(objective, dtype=float).mean(axis=1)
    if not np.isfinite(mean).any():
        raise ValueError(f"no finite objective in any of {mean.size} evaluations")
    return int(np.nanargmax(np.where(np.isfinite(mean), mean, np.nan)))
