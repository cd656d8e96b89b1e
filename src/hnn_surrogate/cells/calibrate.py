"""Per-channel threshold weights: the single-event weight that makes a cell fire.

Weights in the training regimes are drawn relative to these, so that "from
sub- to suprathreshold" means the same thing on a proximal basal synapse and
on the far apical tuft, for a 3-compartment basket cell and a 9-section L5
pyramidal cell. Deterministic: bisection in log-weight, no random numbers.
"""

from __future__ import annotations

import numpy as np

from .channels import EXCITATORY, channels
from .simulate import simulate_cell

W_LO = 1e-5
"""Lowest weight (uS) searched; assumed subthreshold for every channel."""
W_HI = 1.0
"""Highest weight (uS) searched; a channel silent here keeps W_HI."""
EVENT_TIME = 5.0
"""When the calibration event arrives (ms)."""
WINDOW = 40.0
"""How long after the event a spike counts (ms)."""


def _fires(cell_type, channel, weight, dt, delay):
    run = simulate_cell(
        cell_type,
        event_channel=[channel],
        event_time=[EVENT_TIME],
        event_weight=[weight],
        tstop=EVENT_TIME + delay + WINDOW,
        dt=dt,
        delay=delay,
    )
    return run.spike_times.size > 0


def threshold_weight(cell_type, channel, *, dt=0.025, delay=0.1, iterations=12):
    """Smallest single-event weight (uS) on ``channel`` that evokes a somatic spike.

    Returns ``(weight, reached)``: ``reached`` is False when even ``W_HI`` does
    not make the cell fire (then ``weight`` is ``W_HI``). The answer is within
    a factor ``(W_HI / W_LO) ** (2 ** -iterations)`` of the true threshold.
    """
    if not _fires(cell_type, channel, W_HI, dt, delay):
        return W_HI, False
    lo, hi = np.log(W_LO), np.log(W_HI)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if _fires(cell_type, channel, float(np.exp(mid)), dt, delay):
            hi = mid
        else:
            lo = mid
    return float(np.exp(hi)), True


def calibrate(cell_type, *, dt=0.025, delay=0.1, iterations=12, log=None):
    """Threshold and reference weight of every channel of ``cell_type``.

    Excitatory channels are calibrated directly. An inhibitory channel cannot
    make the cell fire; its reference is the AMPA threshold of the same section,
    or, where the section has no AMPA synapse (the pyramidal soma), the median
    excitatory threshold of the cell.

    Returns
    -------
    threshold : array, shape (n_channels,)
        Single-event threshold weight (uS); NaN for inhibitory channels.
    reached : array of bool, shape (n_channels,)
        Whether the cell fired at some weight <= W_HI.
    reference : array, shape (n_channels,)
        The weight (uS) that relative regime weights multiply.
    """
    chans = channels(cell_type)
    threshold = np.full(len(chans), np.nan)
    reached = np.zeros(len(chans), dtype=bool)
    for i, ch in enumerate(chans):
        if ch.receptor in EXCITATORY:
            threshold[i], reached[i] = threshold_weight(
                cell_type, i, dt=dt, delay=delay, iterations=iterations
            )
            if log is not None:
                log(f"{cell_type} {ch.key}: threshold {threshold[i]:.4g} uS"
                    + ("" if reached[i] else " (never fired)"))
    ampa = {ch.section: threshold[i] for i, ch in enumerate(chans) if ch.receptor == "ampa"}
    median = float(np.nanmedian(threshold))
    reference = np.array([
        threshold[i] if ch.receptor in EXCITATORY else ampa.get(ch.section, median)
        for i, ch in enumerate(chans)
    ])
    return threshold, reached, reference


def write_calibration(cell_type, out, *, dt=0.025, delay=0.1, iterations=12, log=None):
    """Calibrate ``cell_type`` and write a ``cell_calibration`` artifact to ``out``."""
    from ..artifacts import CELL_CALIBRATION
    from ..provenance import provenance_attrs

    threshold, reached, reference = calibrate(
        cell_type, dt=dt, delay=delay, iterations=iterations, log=log
    )
    chans = channels(cell_type)
    attrs = provenance_attrs()
    attrs.update(cell_type=cell_type, dt_ms=dt, synaptic_delay_ms=delay,
                 search_range_us=f"{W_LO}..{W_HI}", iterations=iterations)
    ds = CELL_CALIBRATION.build(
        {"section": [c.section for c in chans], "receptor": [c.receptor for c in chans],
         "threshold_weight": threshold, "reached": reached.astype(np.int8),
         "reference_weight": reference},
        {"channel": [c.key for c in chans]},
        attrs,
    )
    return CELL_CALIBRATION.write(ds, out)


def read_reference(path, cell_type):
    """Reference weights (uS) of ``cell_type`` from a calibration file, checked."""
    from ..artifacts import CELL_CALIBRATION, ArtifactError

    ds = CELL_CALIBRATION.read(path)
    if ds.attrs["cell_type"] != cell_type:
        raise ArtifactError(f"{path}: calibrates {ds.attrs['cell_type']}, not {cell_type}")
    expected = [c.key for c in channels(cell_type)]
    if list(ds["channel"].values) != expected:
        raise ArtifactError(f"{path}: channels do not match hnn-core's {cell_type}")
    return ds["reference_weight"].values
