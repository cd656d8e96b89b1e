"""The dipole as a readout of section voltages (dense supervision, issue 13).

hnn-core's dipole mechanism sums, over the segments of a pyramidal cell's
sections, the axial current (the voltage difference to the parent segment over
the axial resistance) times the segment's distance along the apical axis: the
dipole is a fixed linear function of the segments' voltages. With one voltage
per section (its midpoint, hnn-core's ``record_vsec``) it is close to linear in
those: a least-squares readout fitted on NEURON's data recovers it (a lone
L5 pyramidal cell under random input, held-out run: r = 0.994-0.995 from the
9 midpoints, 1.000 from all 55 segments; README).

The surrogate's section-voltage outputs go through the same readout, so its
dipole can be derived from the voltages it predicts and set beside its dipole
head.
"""

from __future__ import annotations

import numpy as np

from .data import section_array


def readout_features(v_soma: np.ndarray, v_sections: np.ndarray) -> np.ndarray:
    """(N, L) soma and (N, L, S) section voltages (mV) -> (N * L, S + 2) features:
    every section, the soma, and a constant."""
    n, length = v_soma.shape
    return np.concatenate([v_sections.reshape(n * length, -1), v_soma.reshape(-1, 1),
                           np.ones((n * length, 1))], axis=1)


def fit_dipole_readout(ds, split: str = "train") -> np.ndarray:
    """Least-squares coefficients (S + 2,) of the dipole (nAm) on the section and
    soma voltages (mV) of ``split``'s NEURON simulations (``v_section``, whole
    traces, spikes included)."""
    if "dipole" not in ds or "v_section" not in ds:
        raise ValueError("the dipole readout needs a pyramidal dataset with v_section "
                         "(cells.record_sections: true)")
    pos = np.flatnonzero(ds["split"].values == split)
    if pos.size == 0:
        raise ValueError(f"no simulations in split {split!r} to fit the dipole readout on")
    ftf = fty = 0.0
    for i in range(0, pos.size, 64):      # normal equations, 64 simulations at a time
        sub = ds.isel(sim=pos[i:i + 64])
        f = readout_features(sub["v_soma"].values.astype(np.float64), section_array(sub))
        ftf = ftf + f.T @ f
        fty = fty + f.T @ sub["dipole"].values.astype(np.float64).ravel()
    coef, *_ = np.linalg.lstsq(ftf, fty, rcond=None)
    return coef


def dipole_from_sections(coef: np.ndarray, v_soma: np.ndarray,
                         v_sections: np.ndarray) -> np.ndarray:
    """(N, L) dipole (nAm) read out of (N, L) soma and (N, L, S) section voltages."""
    return (readout_features(v_soma, v_sections) @ coef).reshape(v_soma.shape)
