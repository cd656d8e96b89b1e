"""Seeded random synaptic input for one simulation, and its binning.

A simulation of a regime draws, from its own random generator:

1. the active channels: a random subset of the cell's (section, receptor)
   channels, its size a uniform fraction in ``active_fraction``;
2. per active channel, a Poisson rate (Hz), log-uniform in ``rate_hz``, and a
   weight, log-uniform in ``excitatory`` or ``inhibitory`` (by receptor), in uS
   (``scale: absolute``) or in units of the channel's calibrated threshold
   weight (``scale: relative``);
3. per active channel, homogeneous Poisson presynaptic times in [0, tstop);
   or, in a regime with ``volley``, volleys: Poisson volley times at a rate
   log-uniform in ``rate_hz``, each active channel taking part in a volley
   with a probability uniform in ``participation``, its event jittered around
   the volley time by a normal spread (sd log-uniform in ``jitter_ms``). A cell
   at rest then meets a few to many synchronous inputs, as under hnn-core's
   bursty alpha and evoked drives and in the poster's summation panels:
   what independent Poisson channels almost never deliver.

Seeds: simulation ``i`` of regime ``r`` of cell type ``c`` uses the generator
``numpy.random.default_rng([seed, crc32(c), crc32(r), i])``, so its input is the
same whichever shard or MPI rank runs it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .channels import INHIBITORY, channels


def name_code(name: str) -> int:
    """A stable 32-bit code for a name (cell type, regime) to seed with."""
    return zlib.crc32(name.encode("utf-8"))


def sim_rng(seed: int, cell_type: str, regime: str, index: int) -> np.random.Generator:
    """The random generator of simulation ``index`` of (cell type, regime)."""
    return np.random.default_rng([seed, name_code(cell_type), name_code(regime), index])


@dataclass(frozen=True)
class Regime:
    """How a regime draws input. Ranges are (low, high) pairs.

    Attributes
    ----------
    active_fraction : (float, float)
        Fraction of the cell's channels that receive input (uniform).
    rate_hz : (float, float)
        Per-channel Poisson rate (Hz, log-uniform).
    excitatory, inhibitory : (float, float)
        Per-channel weight range (log-uniform) for AMPA/NMDA and GABA-A/GABA-B.
    scale : {"relative", "absolute"}
        "relative": weights in units of the channel's threshold weight;
        "absolute": weights in uS.
    participation, jitter_ms : (float, float) or None
        Volleys (module docstring): each active channel's chance of taking part
        in a volley (uniform) and the volley's spread (ms, log-uniform); None:
        independent Poisson channels (``rate_hz`` is then each channel's rate,
        else the volleys').
    """

    active_fraction: tuple[float, float]
    rate_hz: tuple[float, float]
    excitatory: tuple[float, float]
    inhibitory: tuple[float, float]
    scale: str = "relative"
    participation: tuple[float, float] | None = None
    jitter_ms: tuple[float, float] | None = None

    @classmethod
    def from_config(cls, cfg: dict) -> "Regime":
        """Build from a validated ``cells.regimes.<name>`` config section."""
        volley = cfg.get("volley")
        return cls(
            active_fraction=tuple(cfg["active_fraction"]),
            rate_hz=tuple(cfg["rate_hz"]),
            excitatory=tuple(cfg["weight"]["excitatory"]),
            inhibitory=tuple(cfg["weight"]["inhibitory"]),
            scale=cfg["weight"]["scale"],
            participation=tuple(volley["participation"]) if volley else None,
            jitter_ms=tuple(volley["jitter_ms"]) if volley else None,
        )


def _log_uniform(rng, lo_hi, size):
    lo, hi = np.log(lo_hi[0]), np.log(lo_hi[1])
    return np.exp(rng.uniform(lo, hi, size=size))


def draw_events(
    cell_type: str,
    regime: Regime,
    reference: np.ndarray,
    *,
    tstop: float,
    rng: np.random.Generator,
):
    """Draw one simulation's presynaptic events.

    Parameters
    ----------
    reference : array, shape (n_channels,)
        Reference weight (uS) of each channel, for ``scale="relative"``.
    tstop : float
        Simulated time (ms).

    Returns
    -------
    channel : array of int32, shape (n_events,)
    time : array of float64, shape (n_events,)
        Presynaptic times (ms), sorted.
    weight : array of float32, shape (n_events,)
        Weights (uS).
    """
    chans = channels(cell_type)
    n_ch = len(chans)
    frac = rng.uniform(*regime.active_fraction)
    n_active = int(np.clip(np.round(frac * n_ch), 1, n_ch))
    active = np.sort(rng.choice(n_ch, size=n_active, replace=False))
    inhib = np.array([chans[i].receptor in INHIBITORY for i in active])
    rate = _log_uniform(rng, regime.rate_hz, n_active)
    weight = np.where(
        inhib,
        _log_uniform(rng, regime.inhibitory, n_active),
        _log_uniform(rng, regime.excitatory, n_active),
    )
    if regime.scale == "relative":
        weight = weight * reference[active]
    if regime.participation is not None:
        return _volley_events(active, weight, regime, rate[0], tstop=tstop, rng=rng)
    counts = rng.poisson(rate * tstop / 1000.0)
    channel = np.repeat(active, counts).astype(np.int32)
    time = rng.uniform(0.0, tstop, size=counts.sum())
    w = np.repeat(weight, counts).astype(np.float32)
    order = np.argsort(time, kind="stable")
    return channel[order], time[order], w[order]


def _volley_events(active, weight, regime, volley_rate, *, tstop, rng):
    """Volleys at ``volley_rate`` (Hz) on the ``active`` channels (``draw_events``)."""
    share = rng.uniform(*regime.participation)
    spread = _log_uniform(rng, regime.jitter_ms, 1)[0]
    n_volleys = rng.poisson(volley_rate * tstop / 1000.0)
    at = np.sort(rng.uniform(0.0, tstop, size=n_volleys))
    takes_part = rng.random((n_volleys, active.size)) < share
    time = at[:, None] + spread * rng.standard_normal((n_volleys, active.size))
    keep = takes_part & (time >= 0.0) & (time < tstop)
    col = np.nonzero(keep)[1]
    time = time[keep]
    order = np.argsort(time, kind="stable")
    return (active[col][order].astype(np.int32), time[order],
            weight[col][order].astype(np.float32))


def bin_events(channel, arrival, weight, *, n_channels, n_bins, bin_ms):
    """Summed event weight per (time bin, channel): what the surrogate consumes.

    An event counts in bin ``b`` when its arrival time (presynaptic time plus
    synaptic delay, hnn-core's convention) lies in ``[b * bin_ms, (b + 1) * bin_ms)``;
    events arriving at or after ``n_bins * bin_ms`` are dropped.

    Returns
    -------
    array of float32, shape (n_bins, n_channels)
        Summed weights (uS).
    """
    binned = np.zeros((n_bins, n_channels), dtype=np.float64)
    b = np.floor(np.asarray(arrival) / bin_ms).astype(np.int64)
    keep = (b >= 0) & (b < n_bins)
    np.add.at(binned, (b[keep], np.asarray(channel)[keep]), np.asarray(weight)[keep])
    return binned.astype(np.float32)


def bin_trace(trace: np.ndarray, *, dt: float, n_bins: int, bin_ms: float) -> np.ndarray:
    """Mean of a trace sampled at t = k * dt over each bin [b * bin_ms, (b + 1) * bin_ms).

    ``bin_ms`` must be a whole multiple of ``dt``.
    """
    per = int(round(bin_ms / dt))
    if abs(per * dt - bin_ms) > 1e-9 * bin_ms:
        raise ValueError(f"bin_ms ({bin_ms}) must be a whole multiple of dt ({dt})")
    return trace[: n_bins * per].reshape(n_bins, per).mean(axis=1)


def bin_spikes(spike_times, *, n_bins: int, bin_ms: float) -> np.ndarray:
    """Number of spikes per bin, shape (n_bins,), int8."""
    b = np.floor(np.asarray(spike_times) / bin_ms).astype(np.int64)
    b = b[(b >= 0) & (b < n_bins)]
    return np.bincount(b, minlength=n_bins).astype(np.int8)
