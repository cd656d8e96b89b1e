"""The simplest model that could do a surrogate's job: a linear filter of the inputs.

Before a surrogate is called good it must beat this on every input regime.
Each input channel (normalised as the surrogate's) is convolved with a causal
basis of raised cosines spanning 0-100 ms (log-stretched in time, as in
Pillow et al. 2008); a ridge regression maps the filtered inputs and a bias
to each target: the soma voltage clipped at the surrogate's ``v_clip`` and,
for pyramidal cells, the dipole. Two fits per cell type:

* ``pooled``: one filter fitted on every training simulation (the fair
  comparison: one model for all inputs, as the surrogate is);
* ``per_regime``: one filter per input regime, fitted on that regime's
  training simulations (an optimistic bound: a filter tuned to each regime).

The ridge penalty of each fit is chosen on the validation split (mean
squared error of the standardised targets); scores are on the held-out split
with the evaluation's own code (``evaluate.fidelity``): subthreshold RMSE and
explained variance with spikes cut out, voltage r, dipole r and RMSE. A
linear filter predicts no spikes, so it has no spike metrics.
"""

from __future__ import annotations

import logging

import numpy as np

from ..artifacts import LINEAR_BASELINE, SURROGATE_METRICS
from ..datasets import open_cell_dataset
from ..provenance import provenance_attrs
from .data import data_hash

log = logging.getLogger(__name__)

BASIS_MS = 100.0
"""Span of the filters (ms)."""
N_BASIS = 10
"""Raised cosines in the basis."""
PENALTIES = (1e-8, 1e-6, 1e-4, 1e-2, 1.0)
"""Ridge penalties tried, relative to the mean diagonal of X'X."""
METRICS = ("v_rmse_sub", "v_explained_variance_sub", "v_r", "dipole_r", "dipole_rmse")
FITS = ("pooled", "per_regime")


def raised_cosine_basis(bin_ms: float, span_ms: float = BASIS_MS, n: int = N_BASIS,
                        offset_ms: float = 1.0) -> np.ndarray:
    """Causal raised-cosine basis, shape (n, n_lags), log-stretched; lag 0 = the same bin."""
    lags = np.arange(int(round(span_ms / bin_ms))) * bin_ms
    log_t = np.log(lags + offset_ms)
    centres = np.linspace(log_t[0], log_t[-1], n)
    width = centres[1] - centres[0]
    arg = np.clip((log_t[None, :] - centres[:, None]) * np.pi / (2 * width), -np.pi, np.pi)
    return 0.5 * (1 + np.cos(arg))


def features(x: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(N, L, C) inputs -> (N, L, C * n_basis + 1): causally filtered inputs and a bias."""
    n, length, c = x.shape
    size = length + basis.shape[1]
    fx = np.fft.rfft(x, n=size, axis=1)                              # (N, F, C)
    fb = np.fft.rfft(basis, n=size, axis=1)                          # (B, F)
    out = np.fft.irfft(fx[:, :, :, None] * fb.T[None, :, None, :], n=size, axis=1)
    out = out[:, :length].reshape(n, length, c * basis.shape[0])
    return np.concatenate([out, np.ones((n, length, 1))], axis=-1)


class RidgeFilter:
    """Ridge regression on filtered inputs, fitted from accumulated X'X and X'y."""

    def __init__(self, basis: np.ndarray, input_scale: np.ndarray, chunk: int = 16):
        self.basis, self.input_scale, self.chunk = basis, np.asarray(input_scale, float), chunk
        self.xtx = self.xty = self.coef = None

    def _features(self, x):
        return features(x / self.input_scale, self.basis)

    def add(self, x: np.ndarray, y: np.ndarray) -> "RidgeFilter":
        """Accumulate simulations ``x`` (N, L, C) uS with targets ``y`` (N, L, T)."""
        for i in range(0, len(x), self.chunk):
            f = self._features(x[i:i + self.chunk])
            f = f.reshape(-1, f.shape[-1])
            t = y[i:i + self.chunk].reshape(f.shape[0], -1)
            if self.xtx is None:
                self.xtx = np.zeros((f.shape[1], f.shape[1]))
                self.xty = np.zeros((f.shape[1], t.shape[1]))
            self.xtx += f.T @ f
            self.xty += f.T @ t
        return self

    def merged(self, other: "RidgeFilter") -> "RidgeFilter":
        out = RidgeFilter(self.basis, self.input_scale, self.chunk)
        out.xtx, out.xty = self.xtx + other.xtx, self.xty + other.xty
        return out

    def solve(self, penalty: float) -> "RidgeFilter":
        d = self.xtx.shape[0]
        reg = penalty * np.trace(self.xtx) / d * np.eye(d)
        reg[-1, -1] = 0.0                                            # the bias is free
        self.coef = np.linalg.solve(self.xtx + reg, self.xty)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, L, T) predictions for inputs ``x`` (N, L, C) uS."""
        return np.concatenate([self._features(x[i:i + self.chunk]) @ self.coef
                               for i in range(0, len(x), self.chunk)])


def _targets(ds, v_clip):
    parts = [np.minimum(ds["v_soma"].values, v_clip)]
    if "dipole" in ds:
        parts.append(ds["dipole"].values.astype(np.float64))
    return np.stack(parts, axis=-1)


def _fit(filters, val_x, val_y, scale):
    """Solve ``filters`` (accumulated) for the penalty best on the validation data."""
    best = None
    for penalty in PENALTIES:
        f = filters.solve(penalty)
        err = float(np.mean(((f.predict(val_x) - val_y) / scale) ** 2))
        if best is None or err < best[0]:
            best = (err, penalty)
    return filters.solve(best[1]), best[1]


def _score(ds, pos, pred, v_clip):
    """The evaluation's metrics of predictions ``pred`` (n, L, T) for simulations ``pos``."""
    from .evaluate import fidelity

    bin_ms = float(ds.attrs["bin_ms"])
    true_spikes = [ds["spike_time"].values[ds["spike_sim"].values == k] for k in pos]
    v = ds["v_soma"].values[pos]
    dip = ds["dipole"].values[pos] if "dipole" in ds else None
    m = fidelity(v, pred[..., 0], pred[..., 0], v_clip, true_spikes,
                 [np.zeros(0)] * len(pos), bin_ms, dip, pred[..., 1] if dip is not None else None)
    return {k: m[k] for k in METRICS}


def fit_linear_baseline(dataset, out, *, v_clip: float, surrogate_metrics=None, split="test",
                        table=None):
    """Fit and score the linear filters of one cell type; write ``linear_baseline``.

    ``surrogate_metrics``: the surrogate's ``surrogate_metrics`` file on the same
    data set, put beside the filters in the table. Returns the table text.
    """
    ds = open_cell_dataset(dataset)
    split_of = ds["split"].values.astype(str)
    regimes = [str(r) for r in dict.fromkeys(ds["regime"].values.astype(str))]
    regime_of = ds["regime"].values.astype(str)
    x_all, y_all = ds["inputs"].values, _targets(ds, v_clip)
    train = split_of == "train"
    nz = np.where(x_all[train] > 0, x_all[train], np.nan)
    scale = np.nan_to_num(np.nanmean(nz.reshape(-1, nz.shape[-1]), axis=0), nan=1.0)
    y_scale = y_all[train].reshape(-1, y_all.shape[-1]).std(axis=0) + 1e-12
    basis = raised_cosine_basis(float(ds.attrs["bin_ms"]))
    per = {}
    for r in regimes:
        idx = np.flatnonzero(train & (regime_of == r))
        per[r] = RidgeFilter(basis, scale).add(x_all[idx], y_all[idx])
        log.info("%s: accumulated %d training simulations", r, idx.size)
    pooled = per[regimes[0]]
    for r in regimes[1:]:
        pooled = pooled.merged(per[r])

    def sims(s, r=None):
        return np.flatnonzero((split_of == s) & ((regime_of == r) if r else True))

    rows = {fit: {} for fit in FITS}
    penalty = {fit: {} for fit in FITS}
    val = sims("val")
    model, p = _fit(pooled, x_all[val], y_all[val], y_scale)
    for r in [*regimes, "all"]:
        test = sims(split, None if r == "all" else r)
        rows["pooled"][r] = _score(ds, test, model.predict(x_all[test]), v_clip)
        penalty["pooled"][r] = p
    preds = {}
    for r in regimes:
        val = sims("val", r)
        if not val.size:
            raise ValueError(f"{dataset}: regime {r} has no validation simulation")
        model, p = _fit(per[r], x_all[val], y_all[val], y_scale)
        test = sims(split, r)
        preds[r] = (test, model.predict(x_all[test]))
        rows["per_regime"][r] = _score(ds, test, preds[r][1], v_clip)
        penalty["per_regime"][r] = p
        log.info("%s: per-regime filter, penalty %g: %s", r, p, rows["per_regime"][r])
    test = np.concatenate([preds[r][0] for r in regimes])
    rows["per_regime"]["all"] = _score(ds, test, np.concatenate([preds[r][1] for r in regimes]),
                                       v_clip)
    penalty["per_regime"]["all"] = np.nan
    groups = [*regimes, "all"]
    data = {k: np.array([[rows[f][g][k] for g in groups] for f in FITS]) for k in METRICS}
    data["penalty"] = np.array([[penalty[f][g] for g in groups] for f in FITS])
    attrs = provenance_attrs()
    attrs.update(cell_type=ds.attrs["cell_type"], split=split, data_hash=data_hash(ds),
                 basis=f"{N_BASIS} raised cosines over 0-{BASIS_MS:g} ms", v_clip=float(v_clip))
    result = LINEAR_BASELINE.build(data, {"fit": list(FITS), "regime": groups}, attrs)
    surrogate = None
    if surrogate_metrics is not None:
        surrogate = SURROGATE_METRICS.read(surrogate_metrics)
        if surrogate.attrs["data_hash"] != attrs["data_hash"]:
            raise ValueError(f"{surrogate_metrics}: the surrogate was evaluated on other data "
                             f"(data hash {surrogate.attrs['data_hash']}, this data set's "
                             f"{attrs['data_hash']})")
    return LINEAR_BASELINE.publish(result, out, format_baseline(result, surrogate), table)


def format_baseline(ds, surrogate=None) -> str:
    """Markdown: per regime, the surrogate beside the pooled and per-regime filters."""
    has_dip = np.isfinite(ds["dipole_r"].values).any()
    cols = [("V RMSE sub (mV)", "v_rmse_sub", ".3f"), ("V expl. var. sub", "v_explained_variance_sub", ".3f"),
            ("V r", "v_r", ".3f")] + ([("dipole r", "dipole_r", ".3f")] if has_dip else [])
    lines = [f"{ds.attrs['cell_type']}: the surrogate against a linear filter "
             f"({ds.attrs['basis']}, ridge), held-out ({ds.attrs['split']}) simulations", "",
             "| regime | model | " + " | ".join(c[0] for c in cols) + " | beats the pooled filter |",
             "|---|---|" + "---|" * (len(cols) + 1)]
    sur = {} if surrogate is None else {
        str(g): i for i, g in enumerate(surrogate["regime"].values)}
    for j, g in enumerate(ds["regime"].values.astype(str)):
        for i, fit in enumerate(ds["fit"].values.astype(str)):
            vals = [format(float(ds[k].values[i, j]), f) for _, k, f in cols]
            lines.append(f"| {g} | linear, {fit.replace('_', '-')} | " + " | ".join(vals) + " | |")
        if g in sur:
            k = sur[g]
            vals = [format(float(surrogate[c].values[k]), f) for _, c, f in cols]
            lin = {c: float(ds[c].values[0, j]) for _, c, _ in cols}
            better = [float(surrogate[c].values[k]) < lin[c] if c == "v_rmse_sub"
                      else float(surrogate[c].values[k]) > lin[c] for _, c, _ in cols]
            verdict = "yes" if all(better) else ("no: " + ", ".join(
                name for (name, _, _), b in zip(cols, better) if not b))
            lines.append(f"| {g} | surrogate | " + " | ".join(vals) + f" | {verdict} |")
    return "\n".join(lines)
