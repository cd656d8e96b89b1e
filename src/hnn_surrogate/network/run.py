"""One way to run an ``hnn_core.Network``: with the surrogates, or in NEURON.

Every caller (the pipeline's network runs, the drive sweep, the gradient
check, the replay regime, the benchmark, ``simulate_dipole``) goes through
these functions, and both simulators return the same ``NetworkResult``:

* ``network_wiring(net, tstop=, bin_ms=)``: draw the drives' events (hnn-core's
  seeds) and read every synapse and drive event the surrogates deliver;
* ``surrogate_network(net, tstop=, surrogates=)``: that wiring bound to one
  surrogate per cell type, for callers that run it several times (gradients);
* ``simulate_surrogate(net, tstop=, surrogates=)``: a run with the surrogates;
* ``simulate_neuron(net, tstop=, dt=, bin_ms=)``: the same network by hnn-core in
  NEURON (call on every MPI rank; rank 0 gets the result).

Wall times cover building the network in the simulator and simulating it:
for NEURON hnn-core's ``NetworkBuilder`` and run, for the surrogates the
wiring and run; ``setup_s`` is the building part where it is measured apart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class NetworkResult:
    """One network run, in either simulator, on the surrogates' time grid.

    Attributes
    ----------
    simulator : str
        ``neuron``, ``surrogate`` or ``open_loop``.
    times : array, shape (n_bins,)
        Bin centres (ms).
    dipole_l2, dipole_l5 : array, shape (n_bins,)
        Raw layer dipoles (nAm), mean over each bin, before hnn-core's baseline
        renormalisation (``api.to_hnn_dipole`` applies it).
    spike_times : array, shape (n_spikes,)
        ms (bin centres for the surrogates); sorted by time, then gid.
    spike_gids : array, shape (n_spikes,)
    wall_s : float
        Building the network in the simulator and simulating it (s).
    setup_s : float
        Of which building (s): the surrogates' wiring, NEURON's ``NetworkBuilder``
        (rank 0's).
    n_ranks : int
        MPI ranks (1 for the surrogates).
    output : simulate.NetworkOutput | None
        The surrogate run itself (differentiable dipoles, recorded voltages).
    """

    simulator: str
    times: np.ndarray
    dipole_l2: np.ndarray
    dipole_l5: np.ndarray
    spike_times: np.ndarray
    spike_gids: np.ndarray
    wall_s: float
    setup_s: float = float("nan")
    n_ranks: int = 1
    output: object = field(default=None, repr=False)


def bin_centres(n_bins: int, bin_ms: float) -> np.ndarray:
    """Centres (ms) of ``n_bins`` bins of ``bin_ms``."""
    return (np.arange(n_bins) + 0.5) * bin_ms


def network_wiring(net, *, tstop: float, bin_ms: float, trial: int = 0):
    """Draw ``net``'s drive events for trials 0..``trial`` (hnn-core's seeds) and
    return the ``Wiring`` of trial ``trial``: every synapse and drive event."""
    from ..hnn_compat import instantiate_drives
    from .wiring import build_wiring

    instantiate_drives(net, tstop, trial + 1)
    return build_wiring(net, tstop=tstop, bin_ms=bin_ms, trial_idx=trial)


def surrogate_network(net, *, tstop: float, surrogates, bin_ms: float | None = None,
                      trial: int = 0):
    """``net``'s wiring bound to its surrogates: a ``simulate.SurrogateNetwork``.

    ``surrogates``: a folder of ``<cell type>.pt``, a list of checkpoint paths,
    or {cell type: path or ``LoadedSurrogate``} (``api.load_surrogates``);
    ``bin_ms``: the surrogates' own bin when None.
    """
    return _bind(net, tstop, surrogates, bin_ms, trial)[0]


def simulate_surrogate(net, *, tstop: float, surrogates, bin_ms: float | None = None,
                       trial: int = 0, replay=None, replay_types=None, record_v: bool = False,
                       progress_every: int = 0, threads: int | None = None) -> NetworkResult:
    """Simulate trial ``trial`` of ``net`` for ``tstop`` ms with the surrogates.

    Parameters
    ----------
    surrogates : str | Path | list | dict
        See ``surrogate_network``.
    replay : (spike_times, spike_gids), optional
        Open loop: deliver these spikes (e.g. NEURON's) instead of the
        surrogates' own; the result's simulator is then ``open_loop``.
    replay_types : list of str, optional
        Replay only these types' spikes, the others deliver their own
        (``SurrogateNetwork.run``); None: all.
    progress_every : int
        Log a progress line every this many bins (0: never).
    threads : int, optional
        torch's CPU threads for this run.
    """
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    sim, start = _bind(net, tstop, surrogates, bin_ms, trial)
    setup = time.perf_counter() - start
    out = sim.run(record_v=record_v, progress_every=progress_every, replay=replay,
                  replay_types=replay_types)
    wall = time.perf_counter() - start
    l2, l5 = out.layer_dipoles()
    return NetworkResult(simulator="surrogate" if replay is None else "open_loop",
                         times=bin_centres(out.n_bins, out.bin_ms), dipole_l2=l2, dipole_l5=l5,
                         spike_times=out.spike_times, spike_gids=out.spike_gids, wall_s=wall,
                         setup_s=setup, n_ranks=1, output=out)


def _bind(net, tstop, surrogates, bin_ms, trial):
    """(``SurrogateNetwork``, the ``perf_counter`` at which its building began).

    Building is timed like NEURON's (hnn-core's ``NetworkBuilder``): the wiring
    (every connection and drive event), not the drawing of drive events."""
    from ..hnn_compat import instantiate_drives
    from .api import load_surrogates
    from .simulate import SurrogateNetwork
    from .wiring import build_wiring

    loaded = load_surrogates(surrogates, list(net.cell_types))
    bins = {s.bin_ms for s in loaded.values()}
    if bin_ms is None:
        if len(bins) != 1:
            raise ValueError(f"surrogates disagree on their time bin: {sorted(bins)} ms")
        bin_ms = bins.pop()
    instantiate_drives(net, tstop, trial + 1)
    start = time.perf_counter()
    wiring = build_wiring(net, tstop=tstop, bin_ms=float(bin_ms), trial_idx=trial)
    return SurrogateNetwork(wiring, loaded), start


def simulate_neuron(net, *, tstop: float, dt: float, bin_ms: float,
                    trial: int = 0) -> NetworkResult | None:
    """Simulate trial ``trial`` of ``net`` by hnn-core in NEURON, at step ``dt`` (ms).

    Call on every MPI rank; rank 0 returns the result (dipoles averaged over
    each ``bin_ms`` bin), the others None.
    """
    from ..cells.inputs import bin_trace
    from .ground_truth import run_neuron

    res = run_neuron(net, tstop=tstop, dt=dt, trial_idx=trial)
    if res is None:
        return None
    n_bins = int(round(tstop / bin_ms))
    l2, l5 = (bin_trace(res[f"dipole_{k}"], dt=dt, n_bins=n_bins, bin_ms=bin_ms)
              for k in ("L2", "L5"))
    return NetworkResult(simulator="neuron", times=bin_centres(n_bins, bin_ms), dipole_l2=l2,
                         dipole_l5=l5, spike_times=res["spike_times"],
                         spike_gids=res["spike_gids"], wall_s=res["wall_s"],
                         setup_s=res["build_s"], n_ranks=res["n_ranks"])
