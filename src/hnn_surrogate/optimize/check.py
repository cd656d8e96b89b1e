"""A fit checked in NEURON: the start and the fitted network, NEURON beside the surrogates.

Every fit is re-simulated by hnn-core in NEURON with its starting and its
fitted gains, on the fit's own drive seeds and on fresh ones the fit never
saw, and by the surrogate network on the same runs. Each run is scored with
the fit's objective (the same code and signal as the fit: the run's aggregate
dipole after hnn-core's baseline renormalisation), the beta/alpha power ratio (NaN where the
run is too short to resolve 8-12 Hz), the spectral peak and the rates. The
transfer is the objective's change in NEURON over its change in the
surrogate network (1: NEURON moves as the surrogate did), averaged over seeds.
"""

from __future__ import annotations

import json

import numpy as np

from .objectives import band_power, binned_rates, evaluate_objective, spectrum

CONDITIONS = ("default", "fitted")
SIMULATORS = ("neuron", "surrogate")
PEAK_BAND = (3.0, 80.0)


def spectral_peak(f, p, band=PEAK_BAND, beyond: float = 100.0) -> tuple[float, bool]:
    """(frequency of the largest power within ``band``, whether the spectrum's
    peak lies outside the band instead: that largest power is on the band's
    first or last frequency of ``f``, or more power lies above the band, up to
    ``beyond`` Hz). (NaN, False) where the band's power is not finite or all
    zero (a silent run has no peak)."""
    f, p = np.asarray(f, float), np.asarray(p, float)
    if beyond <= band[1]:
        raise ValueError(f"beyond ({beyond} Hz) must lie above the band's top ({band[1]} Hz)")
    inside = np.flatnonzero((f >= band[0]) & (f <= band[1]))
    if inside.size == 0:
        raise ValueError(f"no frequency of the spectrum within {band} Hz")
    if not np.isfinite(p[inside]).all() or not p[inside].any():
        return float("nan"), False
    k = int(np.argmax(p[inside]))
    above = p[(f > band[1]) & (f <= beyond)]
    rising = bool(np.nanmax(above, initial=-np.inf) > p[inside[k]])   # False if none
    return float(f[inside[k]]), bool(k in (0, inside.size - 1) or rising)


def _score(path, objective, transient_ms):
    from ..artifacts import NETWORK_RUN

    run = NETWORK_RUN.read(path)
    bin_ms = float(run.attrs["bin_ms"])
    agg = run["dipole"].sel(layer="agg").values
    f, p = spectrum(agg, bin_ms=bin_ms, transient_ms=transient_ms)
    try:
        ratio = float(band_power(f, p, (13.0, 30.0)) / band_power(f, p, (8.0, 12.0)))
    except ValueError:        # a run too short to resolve the bands: no ratio
        ratio = float("nan")
    peak_beyond = spectral_peak(f.numpy(), p.numpy())        # (Hz, beyond the band)
    keep = (f <= 100.0).numpy()
    st, sg = run["spike_time"].values, run["spike_gid"].values
    rates, scored = {}, {}
    edges = np.arange(agg.size + 1) * bin_ms
    for t, g0, n in zip(run["cell_type"].values, run["gid_start"].values, run["n_cells"].values):
        # binned as the fit's surrogate spike counts are (a spike at t in bin
        # floor(t / bin_ms)), so that both simulators score one rate and one penalty
        mine = (sg >= g0) & (sg < g0 + n)
        counts = np.histogram(st[mine], bins=edges)[0].astype(np.float64)
        rates[str(t)] = float(binned_rates(counts, int(n), bin_ms=bin_ms,
                                           transient_ms=transient_ms))
        scored[str(t)] = (binned_rates(counts, int(n), bin_ms=bin_ms, transient_ms=transient_ms,
                                       window_ms=objective["rate_window_ms"])
                          if objective.get("rate_window_ms") else rates[str(t)])
    value = float(evaluate_objective(objective, agg, bin_ms=bin_ms, transient_ms=transient_ms,
                                     rates=scored))
    return value, ratio, peak_beyond, rates, f.numpy()[keep], p.numpy()[keep]


def check_fit(runs: dict, *, start: str, objective: dict, transient_ms: float, fit_seeds,
              out, table=None) -> str:
    """Score ``runs`` {(condition, seed, simulator): network_run path} -> ``fit_check``."""
    from ..artifacts import FIT_CHECK
    from ..provenance import provenance_attrs

    seeds = sorted({k[1] for k in runs})
    for c in CONDITIONS:
        for s in seeds:
            for sim in SIMULATORS:
                if (c, s, sim) not in runs:
                    raise ValueError(f"check_fit: no {sim} run of condition {c}, seed {s}")
    shape = (len(CONDITIONS), len(seeds), len(SIMULATORS))
    value, ratio, peak = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    beyond = np.zeros(shape, np.int8)
    rate, power, types, freqs = None, None, None, None
    for i, c in enumerate(CONDITIONS):
        for j, s in enumerate(seeds):
            for k, sim in enumerate(SIMULATORS):
                v, r, pk, rt, f, p = _score(runs[(c, s, sim)], objective, transient_ms)
                if rate is None:
                    types, freqs = list(rt), f
                    rate = np.zeros(shape + (len(types),))
                    power = np.zeros(shape + (f.size,))
                value[i, j, k], ratio[i, j, k], (peak[i, j, k], beyond[i, j, k]) = v, r, pk
                rate[i, j, k] = [rt[t] for t in types]
                power[i, j, k] = p
    change = value[1] - value[0]                                   # (seed, simulator)
    transfer = float(np.mean(change[:, 0]) / np.mean(change[:, 1])) if np.mean(change[:, 1]) else np.nan
    attrs = provenance_attrs()
    attrs.update(start=start, objective=json.dumps(objective, sort_keys=True),
                 transient_ms=float(transient_ms), transfer=transfer)
    fit_seeds = {int(s) for s in fit_seeds}
    ds = FIT_CHECK.build(
        {"fit_seed": np.array([s in fit_seeds for s in seeds], np.int8), "objective": value,
         "beta_alpha": ratio, "peak_freq": peak, "peak_beyond_band": beyond, "rate": rate,
         "power": power},
        {"condition": list(CONDITIONS), "seed": np.array(seeds, np.int64),
         "simulator": list(SIMULATORS), "cell_type": types, "freq": freqs}, attrs)
    lines = [f"Fit from {start} checked in NEURON ({objective['kind']}); transfer (NEURON "
             f"change / surrogate change of the objective) {transfer:.2f}", "",
             "| seed | simulator | objective start -> fitted | beta/alpha start -> fitted "
             f"(x) | peak Hz ({PEAK_BAND[0]:g}-{PEAK_BAND[1]:g}) start -> fitted |",
             "|---|---|---|---|---|"]

    def hz(c, j, k):
        return f"{peak[c, j, k]:.1f}" + (" (beyond)" if beyond[c, j, k] else "")

    for j, s in enumerate(seeds):
        tag = "fit" if s in fit_seeds else "fresh"
        for k, sim in enumerate(SIMULATORS):
            lines.append(f"| {s} ({tag}) | {sim} | {value[0, j, k]:.4f} -> {value[1, j, k]:.4f} | "
                         f"{ratio[0, j, k]:.3f} -> {ratio[1, j, k]:.3f} "
                         f"({ratio[1, j, k] / ratio[0, j, k]:.2f}x) | "
                         f"{hz(0, j, k)} -> {hz(1, j, k)} |")
    if beyond.any():
        lines += ["", f"beyond: the largest power in {PEAK_BAND[0]:g}-{PEAK_BAND[1]:g} Hz lies on "
                  "the band's edge or under the power above it (to 100 Hz): the spectrum's "
                  "peak is beyond the band"]
    return FIT_CHECK.publish(ds, out, "\n".join(lines), table)


def summarize_fits(checks: dict, *, out, table=None) -> str:
    """Rank fits ``checks`` {point: fit_check path} by their NEURON change on fresh seeds."""
    from ..artifacts import FIT_CHECK, FIT_SUMMARY
    from ..provenance import provenance_attrs

    points = list(checks)
    rows = {k: [] for k in ("start", "neuron_change_fit", "neuron_change_fresh",
                            "surrogate_change", "beta_alpha_gain", "transfer",
                            "neuron_peak_fitted", "neuron_peak_beyond")}
    ck_seeds = []
    for p in points:
        ck = FIT_CHECK.read(checks[p])
        ck_seeds.append(ck.sizes["seed"])
        obj = ck["objective"]
        change = obj.sel(condition="fitted") - obj.sel(condition="default")   # (seed, sim)
        fit = ck["fit_seed"].values == 1
        ratio = (ck["beta_alpha"].sel(condition="fitted", simulator="neuron")
                 / ck["beta_alpha"].sel(condition="default", simulator="neuron")).values
        fresh = ~fit
        rows["start"].append(str(ck.attrs["start"]))
        rows["neuron_change_fit"].append(float(change.sel(simulator="neuron").values[fit].mean()))
        rows["neuron_change_fresh"].append(
            float(change.sel(simulator="neuron").values[fresh].mean()) if fresh.any() else np.nan)
        rows["surrogate_change"].append(float(change.sel(simulator="surrogate").values[fit].mean()))
        rows["beta_alpha_gain"].append(float(ratio[fresh].mean()) if fresh.any()
                                       else float(ratio.mean()))
        rows["transfer"].append(float(ck.attrs["transfer"]))
        # where NEURON's fitted spectrum peaks: the goal is a frequency, not only a ratio
        peaks = ck["peak_freq"].sel(condition="fitted", simulator="neuron").values
        peaks = peaks[np.isfinite(peaks)]                  # a silent run has no peak
        rows["neuron_peak_fitted"].append(float(np.median(peaks)) if peaks.size else np.nan)
        rows["neuron_peak_beyond"].append(int(
            ck["peak_beyond_band"].sel(condition="fitted", simulator="neuron").values.sum()))
    key = np.array([r if np.isfinite(r) else f for r, f in
                    zip(rows["neuron_change_fresh"], rows["neuron_change_fit"])])
    order = np.argsort(-key, kind="stable")
    rank = np.empty(len(points), np.int64)
    rank[order] = np.arange(1, len(points) + 1)
    columns = {k: np.array(v) for k, v in rows.items()}
    columns["neuron_peak_beyond"] = np.asarray(rows["neuron_peak_beyond"], np.int64)
    ds = FIT_SUMMARY.build({**columns, "rank": rank},
                           {"point": points}, provenance_attrs())
    lines = ["Fits ranked by the objective's change in NEURON on fresh seeds", "",
             "| rank | point | NEURON change (fresh) | NEURON change (fit seeds) | surrogate "
             "change | beta/alpha x (NEURON) | transfer | NEURON fitted peak, median Hz "
             f"(runs whose peak is beyond {PEAK_BAND[0]:g}-{PEAK_BAND[1]:g} Hz) |",
             "|---|---|---|---|---|---|---|---|"]
    for i in order:
        lines.append(f"| {rank[i]} | {points[i]} | {rows['neuron_change_fresh'][i]:.4f} | "
                     f"{rows['neuron_change_fit'][i]:.4f} | {rows['surrogate_change'][i]:.4f} | "
                     f"{rows['beta_alpha_gain'][i]:.2f} | {rows['transfer'][i]:.2f} | "
                     f"{rows['neuron_peak_fitted'][i]:.1f} ({rows['neuron_peak_beyond'][i]} of "
                     f"{ck_seeds[i]}) |")
    return FIT_SUMMARY.publish(ds, out, "\n".join(lines), table)
