"""Objectives of a connectivity fit: pure, differentiable functions of a dipole.

Each takes the aggregate dipole (a tensor over time bins, nAm, raw), the bin
width and the start-up transient to leave out, and returns a scalar tensor
that the fit maximises. The spectrum is a Hann-windowed periodogram of the
dipole after the transient, its mean removed: the same for the surrogate's
dipole (differentiable) and NEURON's (numpy in, numpy out through
``torch.as_tensor``), so a fit and its NEURON check score alike.

Kinds (``kind`` key of an objective's config):

* ``band_share``: power in ``band`` over power in ``total`` (0-1);
* ``band_ratio``: log of power in ``band`` over power in ``reference``;
* ``band_contrast``: log of power in ``band`` over power in its flanks,
  ``below`` and ``above`` together: a peak in the band, where a flat
  spectrum scores by the bands' widths alone (a band's share, in contrast,
  also rises as a spectrum flattens);
* ``peak_frequency``: minus the squared relative distance of the spectrum's
  soft peak (a softmax over log power, ``temperature``) in ``total`` to
  ``target_hz``.

Any kind may be scored per time window (``window_ms``): the dipole after
the transient is cut into Hann-windowed segments of that length, half
overlapping (Welch's segments), each segment's spectrum is scored alone and
the scores are combined by ``window_combine``, ``mean`` (the default) or
``min``. A rhythm then has to be there in every window: on the whole run's
spectrum, two or three population volleys a second, silent in between, carry
a broad spectrum whose share of beta can be as high as a sustained beta
rhythm's (docs/measurements/optimize.md); per window, the windows without a
volley score as the drive alone does.

Any kind may add a penalty on firing rates: ``rates`` {cell type: [low, high]
Hz} and ``rate_weight`` (default 1): each type's rate after the transient
outside its range subtracts ``rate_weight * (distance / high)^2``. The rates
are passed in (``evaluate_objective(..., rates=)``): the surrogate network's
differentiable spike counts, or a NEURON run's, both through
``binned_rates``. With ``rate_window_ms`` the rate is taken per window of
that length (back to back) and the windows' penalties averaged: a range
then asks for firing through the run, where the run's mean rate is met by
a few volleys with silence between them.
"""

from __future__ import annotations

import torch

from .objective_config import OBJECTIVE_KEYS
from .objective_config import check_objective  # noqa: F401  (re-exported)

NYQUIST_GUARD = 1e-9


def _after_transient(dipole, bin_ms: float, transient_ms: float) -> torch.Tensor:
    """``dipole`` as a floating tensor, the bins after ``transient_ms``."""
    x = torch.as_tensor(dipole)
    if not torch.is_floating_point(x):
        x = x.to(torch.float64)
    return x[..., int(round(transient_ms / bin_ms)):]


def _periodogram(segs, bin_ms: float):
    """(frequencies Hz, power) over the last axis: mean removed, Hann window."""
    n = segs.shape[-1]
    segs = segs - segs.mean(dim=-1, keepdim=True)
    window = torch.hann_window(n, periodic=False, dtype=segs.dtype)
    power = torch.fft.rfft(segs * window).abs() ** 2
    return torch.fft.rfftfreq(n, d=bin_ms / 1000.0, dtype=segs.dtype), power


def spectrum(dipole, *, bin_ms: float, transient_ms: float):
    """(frequencies Hz, power) of ``dipole`` after ``transient_ms``: Hann window, mean removed."""
    x = _after_transient(dipole, bin_ms, transient_ms)
    if x.shape[-1] < 8:
        raise ValueError(f"{x.shape[-1]} bins after the {transient_ms} ms transient: too short "
                         "for a spectrum")
    return _periodogram(x, bin_ms)


def windowed_spectrum(dipole, *, bin_ms: float, transient_ms: float, window_ms: float):
    """(frequencies Hz, power (..., n_windows, n_freqs)) of ``dipole`` after
    ``transient_ms``, in segments of ``window_ms``, half overlapping, each
    Hann-windowed with its own mean removed (``spectrum`` per segment)."""
    x = _after_transient(dipole, bin_ms, transient_ms)
    n = int(round(window_ms / bin_ms))
    if n < 8 or n > x.shape[-1]:
        raise ValueError(f"window_ms {window_ms}: {n} bins per window, with "
                         f"{x.shape[-1]} bins after the {transient_ms} ms transient "
                         f"(at least 8 and at most all of them)")
    return _periodogram(x.unfold(-1, n, max(1, n // 2)), bin_ms)     # (..., n_windows, n)


def band_power(freqs, power, band) -> torch.Tensor:
    """Summed power of the frequencies in ``band`` = [low, high] Hz."""
    lo, hi = (float(b) for b in band)
    mask = (freqs >= lo) & (freqs <= hi)
    if not bool(mask.any()):
        raise ValueError(f"no frequency of the spectrum lies in {lo}-{hi} Hz "
                         f"(resolution {float(freqs[1] - freqs[0]):.2f} Hz)")
    return (power * mask).sum(dim=-1)


def _band_share(freqs, power, cfg):
    return band_power(freqs, power, cfg["band"]) / band_power(freqs, power, cfg["total"])


def _band_ratio(freqs, power, cfg):
    return torch.log(band_power(freqs, power, cfg["band"])
                     / band_power(freqs, power, cfg["reference"]))


def _band_contrast(freqs, power, cfg):
    flanks = band_power(freqs, power, cfg["below"]) + band_power(freqs, power, cfg["above"])
    return torch.log(band_power(freqs, power, cfg["band"]) / flanks)


def soft_peak(freqs, power, band, temperature: float) -> torch.Tensor:
    """A differentiable peak frequency: mean frequency under softmax(log power / T) in ``band``."""
    lo, hi = (float(b) for b in band)
    mask = (freqs >= lo) & (freqs <= hi)
    logp = torch.log(power[..., mask] + 1e-30) / float(temperature)
    return (torch.softmax(logp, dim=-1) * freqs[mask]).sum(dim=-1)


def _peak_frequency(freqs, power, cfg):
    peak = soft_peak(freqs, power, cfg["total"], cfg["temperature"])
    return -((peak - cfg["target_hz"]) / cfg["target_hz"]) ** 2


_FUNCTIONS = {"band_share": _band_share, "band_ratio": _band_ratio,
              "band_contrast": _band_contrast, "peak_frequency": _peak_frequency}
OBJECTIVES = {kind: (_FUNCTIONS[kind], keys) for kind, keys in OBJECTIVE_KEYS.items()}
"""kind -> (function of (freqs, power, config), the config keys it needs)."""


def binned_rates(counts, n_cells: int, *, bin_ms: float, transient_ms: float,
                 window_ms: float | None = None) -> torch.Tensor:
    """Spikes per cell per second after ``transient_ms``, from spike counts per bin
    (the last axis): a scalar, or with ``window_ms`` one rate per window of that
    many ms, back to back from the transient's end (a last partial window left
    out). Differentiable in ``counts``."""
    x = _after_transient(counts, bin_ms, transient_ms)
    n = x.shape[-1] if not window_ms else int(round(window_ms / bin_ms))
    if not 1 <= n <= x.shape[-1]:
        raise ValueError(f"rate_window_ms {window_ms}: {n} bins per window, with "
                         f"{x.shape[-1]} bins after the {transient_ms} ms transient")
    windows = x.unfold(-1, n, n)                                  # (..., n_windows, n)
    rates = windows.sum(dim=-1) / (n_cells * n * bin_ms / 1000.0)
    return rates[..., 0] if not window_ms else rates


def rate_penalty(ranges: dict, rates: dict) -> torch.Tensor:
    """Sum over the types of ``ranges`` {type: [low, high] Hz} of the squared
    distance of ``rates[type]`` outside its range, over high. ``rates`` are one
    run's (not a batch's): each a float or a scalar tensor (Hz), or a 1-d tensor
    of one rate per window (``binned_rates``), whose penalties are averaged."""
    total = torch.zeros((), dtype=torch.float64)
    for t, (lo, hi) in ranges.items():
        r = torch.as_tensor(rates[t], dtype=torch.float64)
        total = total + ((torch.relu(r - hi) ** 2 + torch.relu(lo - r) ** 2)
                         / float(hi) ** 2).mean()
    return total


def evaluate_objective(cfg: dict, dipole, *, bin_ms: float, transient_ms: float,
                       rates: dict | None = None) -> torch.Tensor:
    """The objective ``cfg`` of ``dipole`` (tensor over bins, or a batch (..., n_bins));
    ``rates`` {cell type: Hz after the transient, or per window where ``cfg`` has
    ``rate_window_ms``: ``binned_rates``} of one run, where ``cfg`` has rate ranges."""
    function = OBJECTIVES[cfg["kind"]][0]
    if cfg.get("window_ms"):
        freqs, power = windowed_spectrum(dipole, bin_ms=bin_ms, transient_ms=transient_ms,
                                         window_ms=float(cfg["window_ms"]))
        per_window = function(freqs, power, cfg)                    # (..., n_windows)
        combine = cfg.get("window_combine", "mean")
        value = (per_window.mean(dim=-1) if combine == "mean"
                 else per_window.min(dim=-1).values)
    else:
        freqs, power = spectrum(dipole, bin_ms=bin_ms, transient_ms=transient_ms)
        value = function(freqs, power, cfg)
    if cfg.get("rates"):
        if rates is None:
            raise ValueError("the objective has rate ranges: the run's rates are needed")
        value = value - float(cfg.get("rate_weight", 1.0)) * rate_penalty(cfg["rates"], rates)
    return value
