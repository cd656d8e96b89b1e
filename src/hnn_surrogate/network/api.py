"""hnn-core's ``simulate_dipole``, with the surrogates instead of NEURON.

A user with an hnn-core script switches simulator in one line::

    from hnn_core import jones_2009_model, simulate_dipole
    from hnn_surrogate.network import simulate_dipole      # this line
    net = jones_2009_model()
    net.add_poisson_drive(...)
    dpls = simulate_dipole(net, tstop=1000.0, surrogates="results/train")

It returns hnn-core ``Dipole`` objects (nAm, hnn-core's baseline
renormalisation applied, so ``Dipole.smooth``/``scale``/``plot`` work as
usual) and fills ``net.cell_response`` with the spikes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cells.simulate import FAM_TO_NAM
from .simulate import SurrogateNetwork
from .wiring import build_wiring


def load_surrogates(source, cell_types=None) -> dict:
    """Loaded surrogates by cell type from a folder of ``<cell type>.pt`` or a dict.

    A dict may map cell types to checkpoint paths or to ``LoadedSurrogate`` objects.
    """
    from ..surrogate.checkpoint import LoadedSurrogate, load_checkpoint
    from .. import CELL_TYPES

    cell_types = list(cell_types or CELL_TYPES)
    if isinstance(source, dict):
        items = source
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder of surrogate checkpoints")
        items = {t: folder / f"{t}.pt" for t in cell_types}
    out = {}
    for t in cell_types:
        if t not in items:
            raise KeyError(f"no surrogate given for {t}")
        s = items[t]
        out[t] = s if isinstance(s, LoadedSurrogate) else load_checkpoint(s)
        if out[t].cell_type != t:
            raise ValueError(f"{items[t]} is a {out[t].cell_type} surrogate, given for {t}")
    return out


def bin_centres(n_bins: int, bin_ms: float) -> np.ndarray:
    return (np.arange(n_bins) + 0.5) * bin_ms


def to_hnn_dipole(times, l2_nam, l5_nam, net):
    """hnn-core ``Dipole`` from raw layer dipoles (nAm), with hnn-core's own processing.

    The raw sums are what NEURON's dipole mechanism gives (fAm once multiplied
    back); hnn-core's ``_baseline_renormalize`` and ``_convert_fAm_to_nAm`` then
    run exactly as in its ``simulate_dipole``.
    """
    from hnn_core.dipole import Dipole

    l2 = np.asarray(l2_nam, dtype=np.float64) / FAM_TO_NAM
    l5 = np.asarray(l5_nam, dtype=np.float64) / FAM_TO_NAM
    dpl = Dipole(times=np.asarray(times, dtype=np.float64), data=np.stack([l2 + l5, l2, l5], 1))
    dpl._baseline_renormalize(net._N_pyr_x, net._N_pyr_y)
    dpl._convert_fAm_to_nAm()
    return dpl


def prepare_drives(net, tstop, n_trials=1) -> None:
    """Draw every drive's events as hnn-core's ``simulate_dipole`` does (same seeds)."""
    for drive in net.external_drives.values():
        dynamics = drive.get("dynamics", {})
        if "tstop" in dynamics and dynamics["tstop"] is None:
            dynamics["tstop"] = tstop
    net._instantiate_drives(n_trials=n_trials, tstop=tstop)


def simulate_dipole(net, tstop, *, surrogates, n_trials=1, bin_ms=None, record_v=False,
                    verbose=True):
    """Simulate ``net`` with the surrogates; hnn-core's ``simulate_dipole`` signature.

    Parameters
    ----------
    surrogates : str | Path | dict
        Folder with ``<cell type>.pt`` checkpoints, or cell type -> path / loaded.
    bin_ms : float | None
        Time bin; the surrogates' own when None.

    Returns
    -------
    list of hnn_core.Dipole, one per trial (time stamps at bin centres).
    """
    import logging

    from hnn_core.cell_response import CellResponse

    loaded = load_surrogates(surrogates, [t for t in net.cell_types])
    bins = {s.bin_ms for s in loaded.values()}
    if bin_ms is None:
        if len(bins) != 1:
            raise ValueError(f"surrogates disagree on their time bin: {sorted(bins)} ms")
        bin_ms = bins.pop()
    prepare_drives(net, tstop, n_trials)
    dpls, spike_times, spike_gids = [], [], []
    for trial in range(n_trials):
        wiring = build_wiring(net, tstop=tstop, bin_ms=bin_ms, trial_idx=trial)
        out = SurrogateNetwork(wiring, loaded).run(
            record_v=record_v, progress_every=200 if verbose else 0)
        if verbose:
            logging.getLogger(__name__).info("trial %d: %.1f s, %d spikes", trial + 1,
                                             out.wall_s, out.spike_times.size)
        dpls.append(to_hnn_dipole(bin_centres(out.n_bins, out.bin_ms), *out.layer_dipoles(),
                                  net))
        spike_times.append(out.spike_times.tolist())
        spike_gids.append(out.spike_gids.tolist())
    net.cell_response = CellResponse(cell_type_names=list(net.cell_types),
                                     spike_times=spike_times, spike_gids=spike_gids,
                                     spike_types=[[net.gid_to_type(g) for g in gids]
                                                  for gids in spike_gids],
                                     times=bin_centres(int(round(tstop / bin_ms)), bin_ms))
    return dpls
