"""Spike-locked waveforms: what an action potential adds to the soma voltage and dipole.

A spike is a stereotyped event, so its contribution to a trace is a fixed
causal kernel convolved with the spike train. The kernels are fitted by least
squares on the training split (deconvolution, so overlapping spikes are
handled), then:

* the surrogate's regression heads learn the rest: the voltage clipped at
  ``v_clip`` and the dipole minus its spike-locked part;
* its outputs add the kernels back at the spikes it predicts, so action
  potentials and their dipole transients have NEURON's shape, in mV and nAm.

The spike of bin ``b`` is the bin of NEURON's 0 mV crossing; kernels cover
lags 0..n_lags-1 bins after it (causal, so a network simulator can apply them
while stepping).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def spike_part_of_voltage(v: np.ndarray, v_clip: float) -> np.ndarray:
    """The part of the voltage above the clip level (zero below it)."""
    return v - np.minimum(v, v_clip)


def fit_kernels(spikes: np.ndarray, traces: np.ndarray, n_lags: int) -> np.ndarray:
    """Least-squares causal kernels: traces ~ intercept + sum_lag k[lag] * spikes[t - lag].

    Parameters
    ----------
    spikes : array, shape (N, L)
        Spike indicator per bin.
    traces : array, shape (N, L, T)
        What the spikes explain, per target.

    Returns
    -------
    array, shape (T, n_lags)
    """
    n, length = spikes.shape
    p = n_lags + 1
    xtx = np.zeros((p, p))
    xty = np.zeros((p, traces.shape[-1]))
    for i in range(n):
        if not spikes[i].any():
            continue
        x = np.zeros((length, p))
        x[:, 0] = 1.0
        for lag in range(n_lags):
            x[lag:, lag + 1] = spikes[i, : length - lag]
        xtx += x.T @ x
        xty += x.T @ traces[i]
    if xtx[0, 0] == 0:
        return np.zeros((traces.shape[-1], n_lags))
    coef = np.linalg.lstsq(xtx + 1e-9 * np.eye(p), xty, rcond=None)[0]
    return coef[1:].T


def apply_kernels(spikes, kernels):
    """Causal convolution of spike trains with kernels.

    Parameters
    ----------
    spikes : array or tensor, shape (N, L)
    kernels : array or tensor, shape (T, n_lags)

    Returns
    -------
    same kind, shape (N, L, T)
    """
    as_numpy = isinstance(spikes, np.ndarray)
    s = torch.as_tensor(spikes, dtype=torch.float64 if as_numpy else spikes.dtype)
    k = torch.as_tensor(kernels, dtype=s.dtype, device=s.device)
    n_lags = k.shape[1]
    # conv1d is a cross-correlation: flip the kernel for a causal convolution.
    out = F.conv1d(F.pad(s.unsqueeze(1), (n_lags - 1, 0)), k.flip(-1).unsqueeze(1))  # (N, T, L)
    out = out.transpose(1, 2)                                                        # (N, L, T)
    return out.numpy() if as_numpy else out
