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
from .run import bin_centres, simulate_surrogate


def load_surrogates(source, cell_types=None) -> dict:
    """Loaded surrogates by cell type: the one way checkpoints are loaded for a network.

    ``source``: a folder of ``<cell type>.pt``; a list of checkpoint paths (each
    names its cell type); or a dict mapping cell types to checkpoint paths or
    ``LoadedSurrogate`` objects.
    """
    from ..surrogate.checkpoint import LoadedSurrogate, load_checkpoint
    from .. import CELL_TYPES

    cell_types = list(cell_types or CELL_TYPES)
    if isinstance(source, dict):
        items = source
    elif isinstance(source, (list, tuple)):
        items = {}
        for path in source:
            s = path if isinstance(path, LoadedSurrogate) else load_checkpoint(path)
            if s.cell_type in items:
                raise ValueError(f"two surrogates given for {s.cell_type} ({path})")
            items[s.cell_type] = s
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
        s = s if isinstance(s, LoadedSurrogate) else load_checkpoint(s)
        if s.cell_type != t:
            raise ValueError(f"{items[t]} is a {s.cell_type} surrogate, given for {t}")
        out[t] = s.without_sections()      # a network reads soma, dipole and spikes only
    return out


def to_hnn_dipole(times, l2_nam, l5_nam, net):
    """hnn-core ``Dipole`` from raw layer dipoles (nAm), with hnn-core's own processing.

    The raw sums are what NEURON's dipole mechanism gives (fAm once multiplied
    back); hnn-core's baseline renormalisation and fAm -> nAm conversion then
    run exactly as in its ``simulate_dipole``.
    """
    from hnn_core.dipole import Dipole

    from ..hnn_compat import renormalize_dipole

    l2 = np.asarray(l2_nam, dtype=np.float64) / FAM_TO_NAM
    l5 = np.asarray(l5_nam, dtype=np.float64) / FAM_TO_NAM
    dpl = Dipole(times=np.asarray(times, dtype=np.float64), data=np.stack([l2 + l5, l2, l5], 1))
    renormalize_dipole(dpl, net)
    return dpl


def simulate_dipole(net, tstop, *, surrogates, n_trials=1, bin_ms=None, record_v=False,
                    verbose=True):
    """Simulate ``net`` with the surrogates; hnn-core's ``simulate_dipole`` signature.

    Parameters
    ----------
    surrogates : str | Path | list | dict
        Folder with ``<cell type>.pt`` checkpoints, a list of checkpoint paths,
        or cell type -> path / loaded.
    bin_ms : float | None
        Time bin; the surrogates' own when None.

    Returns
    -------
    list of hnn_core.Dipole, one per trial (time stamps at bin centres).
    """
    import logging

    from hnn_core.cell_response import CellResponse

    loaded = load_surrogates(surrogates, [t for t in net.cell_types])
    dpls, spike_times, spike_gids = [], [], []
    for trial in range(n_trials):
        res = simulate_surrogate(net, tstop=tstop, surrogates=loaded, bin_ms=bin_ms,
                                 trial=trial, record_v=record_v,
                                 progress_every=200 if verbose else 0)
        if verbose:
            logging.getLogger(__name__).info("trial %d: %.1f s, %d spikes", trial + 1,
                                             res.wall_s, res.spike_times.size)
        dpls.append(to_hnn_dipole(res.times, res.dipole_l2, res.dipole_l5, net))
        spike_times.append(res.spike_times.tolist())
        spike_gids.append(res.spike_gids.tolist())
        bin_ms = res.output.bin_ms
    net.cell_response = CellResponse(cell_type_names=list(net.cell_types),
                                     spike_times=spike_times, spike_gids=spike_gids,
                                     spike_types=[[net.gid_to_type(g) for g in gids]
                                                  for gids in spike_gids],
                                     times=bin_centres(int(round(tstop / bin_ms)), bin_ms))
    return dpls
