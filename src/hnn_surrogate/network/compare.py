"""NEURON against the surrogates, per scenario: rates, spectra, band power, L5 share.

Measured after a transient (``transient_ms``) on the unsmoothed dipole (the
smoothing window would hide gamma):

* rate: spikes per cell per second, per cell type;
* power spectral density of the aggregate dipole: Hann-windowed periodogram
  of the mean-removed trace; peak frequency in 3-80 Hz;
* band fractions: power in alpha (8-12 Hz), beta (13-30), gamma (30-60) over
  the power in 1-100 Hz;
* L5 share: variance of the L5 dipole over the sum of the L2 and L5 variances.

Checks printed with the table (the targets of the network stage): rates within
15 %, peak within 2 Hz, band fractions within 20 % (relative), and the change
from the first condition to each other (L5 pyramidal rate, dipole power) of
the same sign and within 25 % in size. Beside each, NEURON's spread over the
seeds, and whether NEURON on half the seeds meets it against NEURON on the
other half (``neuron_halves``): the noise a target is set against, and what a
network with NEURON's own statistics but other drive realizations scores.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..artifacts import NETWORK_COMPARISON, NETWORK_RUN
from ..provenance import provenance_attrs

BANDS = {"alpha": (8.0, 12.0), "beta": (13.0, 30.0), "gamma": (30.0, 60.0)}
TOTAL_BAND = (1.0, 100.0)
PEAK_RANGE = (3.0, 80.0)
SIMULATORS = ("neuron", "surrogate", "open_loop")
"""NEURON; the surrogates; the surrogates fed NEURON's spikes (open loop)."""


def psd(x: np.ndarray, bin_ms: float):
    """One-sided PSD (units^2/Hz) of a mean-removed, Hann-windowed trace."""
    x = np.asarray(x, np.float64) - np.mean(x)
    win = np.hanning(x.size)
    fs = 1000.0 / bin_ms
    spec = np.abs(np.fft.rfft(x * win)) ** 2 / (fs * np.sum(win ** 2))
    spec[1:-1] *= 2
    return np.fft.rfftfreq(x.size, 1.0 / fs), spec


def band_fractions(x: np.ndarray, bin_ms: float):
    """(freq, psd, {band: power in the band / power in 1-100 Hz}) of a trace; the
    fractions are NaN where the trace has no power in 1-100 Hz."""
    f, p = psd(x, bin_ms)
    total = p[(f >= TOTAL_BAND[0]) & (f <= TOTAL_BAND[1])].sum()
    return f, p, {b: (p[(f >= lo) & (f <= hi)].sum() / total if total > 0 else np.nan)
                  for b, (lo, hi) in BANDS.items()}


def run_metrics(ds, transient_ms: float) -> dict:
    """Rates, spectrum, peak, band fractions, power and L5 share of one network_run."""
    t = ds["time"].values
    keep = t >= transient_ms
    span_s = (t[-1] + float(ds.attrs["bin_ms"]) / 2 - transient_ms) / 1000.0
    st, sg = ds["spike_time"].values, ds["spike_gid"].values
    rates = {}
    for i, ct in enumerate(ds["cell_type"].values.astype(str)):
        g0, n = int(ds["gid_start"].values[i]), int(ds["n_cells"].values[i])
        sel = (sg >= g0) & (sg < g0 + n) & (st >= transient_ms)
        rates[ct] = sel.sum() / n / span_s
    dip = {k: ds["dipole"].sel(layer=k).values[keep] for k in ("agg", "L2", "L5")}
    f, p, bands = band_fractions(dip["agg"], float(ds.attrs["bin_ms"]))
    in_peak = (f >= PEAK_RANGE[0]) & (f <= PEAK_RANGE[1])
    var_l2, var_l5 = np.var(dip["L2"]), np.var(dip["L5"])
    return {
        "rates": rates, "freq": f, "psd": p,
        "peak_freq": float(f[in_peak][np.argmax(p[in_peak])]),
        "bands": bands, "power": float(np.var(dip["agg"])),
        "l5_share": float(var_l5 / (var_l2 + var_l5)) if var_l2 + var_l5 > 0 else np.nan,
    }


def compare_runs(runs: dict, *, scenario: str, transient_ms: float, out, table=None):
    """Build, print and write the comparison of ``runs[(condition, seed, simulator)] = path``."""
    conditions = list(dict.fromkeys(k[0] for k in runs))
    seeds = sorted({k[1] for k in runs})
    data = {k: NETWORK_RUN.read(p) for k, p in runs.items()}
    for k, ds in data.items():
        if "replay_types" in ds.attrs:
            raise ValueError(f"{runs[k]}: a partial open loop (only {ds.attrs['replay_types']} "
                             "replayed); the comparison takes closed and whole open loops")
    metrics = {k: run_metrics(ds, transient_ms) for k, ds in data.items()}
    first = next(iter(metrics.values()))
    cell_types = list(first["rates"])
    freq = first["freq"]
    shape = (len(conditions), len(seeds), len(SIMULATORS))
    rate = np.full(shape + (len(cell_types),), np.nan)
    peak = np.full(shape, np.nan)
    band = np.full(shape + (len(BANDS),), np.nan)
    power = np.full(shape, np.nan)
    share = np.full(shape, np.nan)
    spec = np.full(shape + (freq.size,), np.nan)
    for (c, s, sim), m in metrics.items():
        i, j, k = conditions.index(c), seeds.index(s), SIMULATORS.index(sim)
        rate[i, j, k] = [m["rates"][ct] for ct in cell_types]
        peak[i, j, k] = m["peak_freq"]
        band[i, j, k] = [m["bands"][b] for b in BANDS]
        power[i, j, k] = m["power"]
        share[i, j, k] = m["l5_share"]
        spec[i, j, k] = m["psd"]
    attrs = provenance_attrs()
    attrs.update(scenario=scenario, transient_ms=float(transient_ms))
    ds = NETWORK_COMPARISON.build(
        {"rate": rate, "peak_freq": peak, "band_fraction": band, "dipole_power": power,
         "l5_share": share, "psd": spec},
        {"condition": conditions, "seed": np.array(seeds, np.int64),
         "simulator": list(SIMULATORS), "cell_type": cell_types, "band": list(BANDS),
         "freq": freq},
        attrs)
    ds.attrs.update(comparison_counts(ds))
    return NETWORK_COMPARISON.publish(ds, out, format_comparison(ds), table)


def comparison_counts(ds) -> dict:
    """The NetCDF's counts: ``targets_met`` of ``targets_checked`` (the surrogate
    network against NEURON) and ``neuron_self_met`` (NEURON against itself,
    ``neuron_halves``; -1 with fewer than two seeds)."""
    met, n = target_count(target_rows(ds))
    halves = neuron_halves(ds)
    return {"targets_met": met, "targets_checked": n,
            "neuron_self_met": target_count(target_rows(halves))[0] if halves is not None else -1}


def _rel(a, b):
    return abs(a - b) / abs(b) if b else (0.0 if a == b else np.inf)


def target_rows(ds) -> list[dict]:
    """Every row of the comparison: a dict of ``cond``, ``name``, the ``neuron`` and
    ``surrogate`` values (seed means, as text), ``diff``, ``target``, ``ok`` (True,
    False, or None for a row that is only reported), ``open_loop`` and ``spread``
    (NEURON's standard deviation over the seeds: relative where the target is)."""
    m = ds.mean("seed")
    rows = []

    def quantity(cond, name, da, fmt, limit=None, relative=True):
        a, b, o = (float(da.sel(simulator=sim).mean("seed")) for sim in SIMULATORS)
        ol = "" if np.isnan(o) else format(o, fmt)
        sd = (float(da.sel(simulator="neuron").std("seed", ddof=1))
              if da.sizes["seed"] > 1 else np.nan)
        if relative:
            diff, off = f"{100 * _rel(b, a):.0f} %", _rel(b, a)
            spread = "" if np.isnan(sd) or not a else f"{100 * sd / abs(a):.0f} %"
        else:
            diff, off = f"{b - a:+{fmt}}", abs(b - a)
            spread = "" if np.isnan(sd) else format(sd, fmt)
        if limit is None:
            target, ok = "(reported)", None
        else:
            target = f"<= {100 * limit:.0f} %" if relative else f"<= {limit:g}"
            ok = bool(off <= limit)
        rows.append(dict(cond=cond, name=name, neuron=format(a, fmt), surrogate=format(b, fmt),
                         diff=diff, target=target, ok=ok, open_loop=ol, spread=spread))

    for cond in ds["condition"].values:
        dc = ds.sel(condition=cond)
        for ct in ds["cell_type"].values:
            quantity(cond, f"rate {ct} (Hz)", dc["rate"].sel(cell_type=ct), ".2f", 0.15)
        quantity(cond, "dipole peak (Hz)", dc["peak_freq"], ".1f", 2.0, relative=False)
        for bn in ds["band"].values:
            quantity(cond, f"{bn} fraction", dc["band_fraction"].sel(band=bn), ".3f", 0.2)
        quantity(cond, "L5 share of dipole", dc["l5_share"], ".2f", None, relative=False)
    conds = list(ds["condition"].values)
    for cond in conds[1:]:
        for name, var, sel in (("L5_pyramidal rate", "rate", {"cell_type": "L5_pyramidal"}),
                               ("dipole power", "dipole_power", {})):
            if var == "rate" and "L5_pyramidal" not in ds["cell_type"].values:
                continue
            ch = {}
            for sim in ("neuron", "surrogate"):
                base = float(m[var].sel(condition=conds[0], simulator=sim, **sel))
                new = float(m[var].sel(condition=cond, simulator=sim, **sel))
                ch[sim] = new - base
            same_sign = np.sign(ch["neuron"]) == np.sign(ch["surrogate"])
            r = _rel(ch["surrogate"], ch["neuron"])
            rows.append(dict(cond=f"{conds[0]} -> {cond}", name=f"change of {name}",
                             neuron=f"{ch['neuron']:+.3g}", surrogate=f"{ch['surrogate']:+.3g}",
                             diff=f"{100 * r:.0f} %", target="same sign, <= 25 %",
                             ok=bool(same_sign and r <= 0.25), open_loop="", spread=""))
    return rows


def neuron_halves(ds):
    """NEURON against itself: a comparison dataset whose "neuron" is NEURON on the
    first half of the seeds and whose "surrogate" is NEURON on the next half (the
    same number of seeds; an odd last seed left out), open loop empty; None with
    fewer than two seeds. What a network with NEURON's own statistics, under
    other drive realizations, scores against the targets at half the seeds."""
    half = ds.sizes["seed"] // 2
    if half < 1:
        return None
    nrn = ds.sel(simulator="neuron")
    first = nrn.isel(seed=slice(0, half))
    second = nrn.isel(seed=slice(half, 2 * half)).assign_coords(seed=first["seed"].values)
    empty = xr.full_like(first, np.nan)
    out = xr.concat([first, second, empty], dim="simulator").assign_coords(
        simulator=list(SIMULATORS))
    # every variable's dims in the comparison's order (concat put simulator first)
    return out.transpose("condition", "seed", "simulator", ...)


def format_comparison(ds) -> str:
    """Markdown table of seed means, NEURON beside surrogate, with the targets checked,
    and beside each target whether NEURON on half the seeds meets it against NEURON
    on the other half (``neuron_halves``)."""
    rows = target_rows(ds)
    halves = neuron_halves(ds)
    self_rows = target_rows(halves) if halves is not None else []
    control = {(r["cond"], r["name"]): r["ok"] for r in self_rows}
    lines = [f"Network comparison, scenario {ds.attrs['scenario']} "
             f"({ds.sizes['seed']} seeds, after {ds.attrs['transient_ms']:.0f} ms)", ""]
    lines += ["| condition | quantity | NEURON | surrogate | difference | target | met "
              "| open loop | NEURON's seed spread | NEURON against itself |", "|" + "---|" * 10]
    for r in rows:
        ctl = control.get((r["cond"], r["name"]))
        lines.append(f"| {r['cond']} | {r['name']} | {r['neuron']} | {r['surrogate']} | "
                     f"{r['diff']} | {r['target']} | "
                     f"{'' if r['ok'] is None else 'yes' if r['ok'] else 'NO'} | "
                     f"{r['open_loop']} | {r['spread']} | "
                     f"{'' if ctl is None else 'yes' if ctl else 'NO'} |")
    met, n = target_count(rows)
    lines += ["", f"{met} of {n} targets met (NEURON vs the surrogate "
                  "network). Open loop: each surrogate cell fed the input NEURON's network "
                  "gave it (NEURON's spikes delivered), its own spikes counted: the single-cell "
                  "error before the network amplifies it. NEURON's seed spread: the standard "
                  "deviation of NEURON's value over the seeds (relative to its mean where the "
                  "target is): what another drive realization moves it by, and the mean of n "
                  "seeds by about that over sqrt(n). Both simulators run the same seeds, so a "
                  "target tighter than the spread asks the surrogate network to track NEURON's "
                  "realization, not only its statistics."]
    if halves is not None:
        seeds = [int(s) for s in ds["seed"].values]
        half = halves.sizes["seed"]
        c_met, c_n = target_count(self_rows)
        lines += ["", f"NEURON against itself (NEURON on seeds {_seed_list(seeds[half:2 * half])} "
                      f"in the surrogate network's place, against seeds "
                      f"{_seed_list(seeds[:half])}; {half} each): "
                      f"{c_met} of {c_n} targets met. What a network with NEURON's own "
                      "statistics under other drive realizations scores (at half the seeds, "
                      "so with more noise than the comparison above): a target it misses is "
                      "set tighter than the seeds resolve."]
    return "\n".join(lines)


def target_count(rows) -> tuple[int, int]:
    """(targets met, targets) of ``target_rows``."""
    checked = [r["ok"] for r in rows if r["ok"] is not None]
    return sum(checked), len(checked)


def _seed_list(seeds) -> str:
    """Seeds as text: "6-11" where they run on by one, else "0, 2, 5"."""
    seeds = [int(s) for s in seeds]
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))
