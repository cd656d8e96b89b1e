"""The NetCDF schema of every artifact, and the only way to read and write one.

Each ``Schema`` lists an artifact's variables (dims, dtype, units, meaning) and
required global attributes. ``Schema.write`` fills in units and descriptions,
validates, compresses, and writes atomically (temporary file in the same
folder, then rename), so a killed job never leaves a file that looks finished.
``Schema.read`` rejects a file that is unreadable, of another artifact kind or
schema version, or that does not match the schema, naming file and variable.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr


@contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path``; on success fsync and rename it to ``path``.

    On any error (or a kill) ``path`` is untouched: only a hidden
    ``.<name>.<pid>.tmp`` can be left behind, which nothing reads.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class ArtifactError(ValueError):
    """A file is missing, unreadable, or does not match its artifact schema."""


def write_json(obj, path) -> Path:
    """A job's parameters as a JSON file (sorted keys), written atomically."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, sort_keys=True, indent=1) + "\n")
    return Path(path)


def read_json(path, what: str = "parameters"):
    """A JSON parameter file (``write_json``); a clear error naming it if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such {what} file")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not a JSON {what} file ({err})") from None


@dataclass(frozen=True)
class Var:
    """One variable (or coordinate) of an artifact."""

    dims: tuple[str, ...]
    dtype: str
    units: str
    description: str
    optional: bool = False
    timing: bool = False  # a wall time or a rate derived from one: differs run to run


def _dtype_ok(actual: np.dtype, expected: str) -> bool:
    if expected == "str":
        return actual.kind in "OUS"
    return actual == np.dtype(expected)


@dataclass(frozen=True)
class Schema:
    """Names, dims, dtypes and units of one artifact kind."""

    name: str
    version: int
    variables: dict[str, Var]
    attrs: tuple[str, ...] = ()

    def validate(self, ds: xr.Dataset, source: str = "dataset") -> None:
        """Raise ArtifactError naming ``source`` and the culprit on any mismatch."""
        kind = ds.attrs.get("artifact")
        if kind != self.name:
            raise ArtifactError(f"{source}: is a {kind!r} artifact, expected {self.name!r}")
        version = ds.attrs.get("schema_version")
        if version is None or int(version) != self.version:
            raise ArtifactError(
                f"{source}: schema_version {version!r} of {self.name!r}, "
                f"this code reads version {self.version}"
            )
        for name, var in self.variables.items():
            if name not in ds.variables:
                if var.optional:
                    continue
                raise ArtifactError(f"{source}: variable {name!r} is missing")
            actual = ds[name]
            if tuple(actual.dims) != var.dims:
                raise ArtifactError(
                    f"{source}: variable {name!r} has dims {tuple(actual.dims)}, "
                    f"expected {var.dims}"
                )
            if not _dtype_ok(actual.dtype, var.dtype):
                raise ArtifactError(
                    f"{source}: variable {name!r} has dtype {actual.dtype}, "
                    f"expected {var.dtype}"
                )
            if actual.attrs.get("units", var.units) != var.units:
                raise ArtifactError(
                    f"{source}: variable {name!r} is in {actual.attrs['units']!r}, "
                    f"expected {var.units!r}"
                )
        extra = sorted(set(ds.variables) - set(self.variables))
        if extra:
            raise ArtifactError(f"{source}: unknown variables {extra} for {self.name!r}")
        for attr in self.attrs:
            if attr not in ds.attrs:
                raise ArtifactError(f"{source}: global attribute {attr!r} is missing")

    def build(self, data_vars: dict, coords: dict, attrs: dict) -> xr.Dataset:
        """Assemble a Dataset from ``name: array`` maps, with this schema's dims and units."""
        def wrap(name, values):
            var = self.variables.get(name)
            if var is None:
                raise ArtifactError(f"{self.name}: {name!r} is not in the schema")
            return xr.Variable(
                var.dims, np.asarray(values),
                attrs={"units": var.units, "description": var.description},
            )

        ds = xr.Dataset(
            {k: wrap(k, v) for k, v in data_vars.items()},
            coords={k: wrap(k, v) for k, v in coords.items()},
        )
        ds.attrs.update(attrs)
        ds.attrs["artifact"] = self.name
        ds.attrs["schema_version"] = self.version
        return ds

    def _encoding(self, ds: xr.Dataset) -> dict:
        enc = {}
        for name, da in ds.variables.items():
            if da.dtype.kind in "OUS" or da.ndim == 0:
                continue
            chunks = []
            for i, (dim, n) in enumerate(zip(da.dims, da.shape)):
                if i == 0 and da.ndim > 1:
                    chunks.append(1)  # one record (e.g. one simulation) per chunk
                else:
                    chunks.append(max(1, min(n, 1 << 16 if da.ndim == 1 else n)))
            enc[name] = {"zlib": True, "complevel": 4, "shuffle": True}
            if all(n > 0 for n in da.shape):
                enc[name]["chunksizes"] = tuple(chunks)
        return enc

    def timing(self, name: str) -> bool:
        """Whether variable ``name`` is a wall time (or derived from one)."""
        var = self.variables.get(name)
        return bool(var and var.timing)

    def content_hash(self, ds: xr.Dataset) -> str:
        """SHA-256 (16 hex digits) of every variable but the timings: names, dims,
        dtypes and values. Equal hashes mean equal results, whatever the machine."""
        h = hashlib.sha256()
        for name in sorted(map(str, ds.variables)):
            if self.timing(name):
                continue
            da = ds[name]
            values = da.values
            h.update(f"{name}{da.dims}{values.dtype}{values.shape}".encode())
            if values.dtype.kind in "OUS":
                h.update("\x1f".join(map(str, values.ravel())).encode())
            else:
                h.update(np.ascontiguousarray(values))    # the buffer: no copy of a large array
        return h.hexdigest()[:16]

    def write(self, ds: xr.Dataset, path) -> Path:
        """Validate ``ds`` and write it to ``path`` atomically, with its content hash
        (``content_hash`` attribute); return the path."""
        path = Path(path)
        self.validate(ds, source=f"{self.name} to be written to {path}")
        ds.attrs["content_hash"] = self.content_hash(ds)
        with atomic_output(path) as tmp:
            ds.to_netcdf(tmp, engine="netcdf4", encoding=self._encoding(ds))
        return path

    def publish(self, ds: xr.Dataset, path, text: str, table=None) -> str:
        """Write ``ds`` to ``path``, print ``text`` (its human summary), and save that to ``table``."""
        self.write(ds, path)
        print(text)
        if table is not None:
            with atomic_output(table) as tmp:
                Path(tmp).write_text(text + "\n")
        return text

    def read(self, path) -> xr.Dataset:
        """Read, validate and load ``path``; raise ArtifactError on any problem."""
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"{path}: no such {self.name} file")
        try:
            with xr.open_dataset(path, engine="netcdf4") as ds:
                ds = ds.load()
        except Exception as err:  # netCDF4/HDF5 raise many types on corrupt files
            raise ArtifactError(f"{path}: not a readable NetCDF file ({err})") from err
        self.validate(ds, source=str(path))
        return ds


_CELL_ATTRS = ("cell_type", "git_commit", "versions", "created")

CELL_CALIBRATION = Schema(
    name="cell_calibration",
    version=1,
    attrs=_CELL_ATTRS + ("dt_ms", "synaptic_delay_ms"),
    variables={
        "channel": Var(("channel",), "str", "1", "hnn-core synapse key f'{section}_{receptor}'"),
        "section": Var(("channel",), "str", "1", "hnn-core section of the synapse"),
        "receptor": Var(("channel",), "str", "1", "receptor: ampa, nmda, gabaa or gabab"),
        "threshold_weight": Var(("channel",), "float64", "uS",
                                "smallest single-event weight that evokes a somatic spike "
                                "(NaN for inhibitory channels)"),
        "reached": Var(("channel",), "int8", "1",
                       "1 if the cell fired at some weight <= the search's upper bound"),
        "reference_weight": Var(("channel",), "float64", "uS",
                                "weight that relative regime weights multiply"),
    },
)

CELL_SIMS = Schema(
    name="cell_sims",
    version=2,  # 2: the ``run`` variable (splits by network run)
    attrs=_CELL_ATTRS + ("dt_ms", "bin_ms", "tstop_ms", "synaptic_delay_ms", "seed",
                         "config_hash"),
    variables={
        "time": Var(("time",), "float64", "ms", "start of each bin [t, t + bin_ms)"),
        "time_fine": Var(("time_fine",), "float64", "ms", "NEURON's time grid k * dt",
                         optional=True),
        "channel": Var(("channel",), "str", "1", "hnn-core synapse key f'{section}_{receptor}'"),
        "section": Var(("channel",), "str", "1", "hnn-core section of the synapse"),
        "receptor": Var(("channel",), "str", "1", "receptor: ampa, nmda, gabaa or gabab"),
        "recorded_section": Var(("recorded_section",), "str", "1",
                                "hnn-core section whose midpoint voltage v_section holds",
                                optional=True),
        "regime": Var(("sim",), "str", "1", "input regime of the simulation"),
        "sim_index": Var(("sim",), "int64", "1",
                         "index of the simulation within its regime (seeds its input)"),
        "split": Var(("sim",), "str", "1", "train, val or test", optional=True),
        "run": Var(("sim",), "int64", "1",
                   "network run whose cell the simulation is (replay and network_prior "
                   "regimes; the split keeps a run's cells together), -1 for a lone cell's "
                   "random input"),
        "inputs": Var(("sim", "time", "channel"), "float32", "uS",
                      "summed weight of the events arriving in each bin "
                      "(presynaptic time + synaptic delay)"),
        "v_soma": Var(("sim", "time"), "float32", "mV", "somatic voltage, mean over the bin"),
        "dipole": Var(("sim", "time"), "float32", "nAm",
                      "the cell's current dipole, mean over the bin (pyramidal cells)",
                      optional=True),
        "v_section": Var(("sim", "time", "recorded_section"), "float32", "mV",
                         "voltage at each section's midpoint, mean over the bin "
                         "(cells.record_sections)", optional=True),
        "spike_count": Var(("sim", "time"), "int8", "1", "somatic spikes in the bin"),
        "n_spikes": Var(("sim",), "int32", "1", "somatic spikes in the simulation"),
        "v_soma_fine": Var(("sim", "time_fine"), "float32", "mV",
                           "somatic voltage at NEURON's dt", optional=True),
        "dipole_fine": Var(("sim", "time_fine"), "float32", "nAm",
                           "current dipole at NEURON's dt (pyramidal cells)", optional=True),
        "event_sim": Var(("event",), "int32", "1", "position along sim of the event's simulation"),
        "event_channel": Var(("event",), "int16", "1", "position along channel"),
        "event_time": Var(("event",), "float64", "ms", "presynaptic event time"),
        "event_weight": Var(("event",), "float32", "uS", "synaptic weight"),
        "spike_sim": Var(("spike",), "int32", "1", "position along sim of the spike's simulation"),
        "spike_time": Var(("spike",), "float64", "ms", "somatic spike time (0 mV crossing)"),
    },
)

CELLS_BENCHMARK = Schema(
    name="cells_benchmark",
    version=1,
    attrs=("git_commit", "versions", "created", "tstop_ms", "n_sims"),
    variables={
        "cell_type": Var(("cell_type",), "str", "1", "HNN cell type"),
        "ranks": Var(("ranks",), "int32", "1", "MPI ranks"),
        "wall_s": Var(("cell_type", "ranks"), "float64", "s", "wall time of the shard", timing=True),
        "ms_per_s_per_core": Var(("cell_type", "ranks"), "float64", "ms/s",
                                 "simulated ms per wall second per core", timing=True),
        "speedup": Var(("cell_type",), "float64", "1", "wall(1 rank) / wall(2 ranks)", timing=True),
        "efficiency": Var(("cell_type",), "float64", "1", "speedup / 2", timing=True),
        "identical": Var(("cell_type",), "int8", "1",
                         "1 if the 1-rank and 2-rank shards hold identical arrays"),
    },
)

SURROGATE_HISTORY = Schema(
    name="surrogate_history",
    version=1,
    attrs=("cell_type", "data_hash", "device", "best_epoch", "git_commit", "versions", "created"),
    variables={
        "epoch": Var(("epoch",), "int32", "1", "epoch index (0-based)"),
        "train_loss": Var(("epoch",), "float64", "1", "mean training loss (normalised units)"),
        "val_loss": Var(("epoch",), "float64", "1", "validation loss, whole simulations"),
        "val_mse": Var(("epoch",), "float64", "1", "validation MSE of voltage (and dipole), normalised"),
        "val_spike_bce": Var(("epoch",), "float64", "1", "validation spike-head cross-entropy"),
        "wall_s": Var(("epoch",), "float64", "s", "wall time of the epoch", timing=True),
        "lr": Var(("epoch",), "float64", "1",
                  "learning rate after the epoch: the next epoch's first (train.lr_schedule)",
                  optional=True),
    },
)

SURROGATE_METRICS = Schema(
    name="surrogate_metrics",
    version=2,  # 2: spike F1 at +/-5 and +/-50 ms (timing error against count error)
    attrs=("cell_type", "split", "data_hash", "git_commit", "versions", "created"),
    variables={
        "regime": Var(("regime",), "str", "1", "input regime, or 'all'"),
        "n_sims": Var(("regime",), "int32", "1", "simulations evaluated"),
        **{name: Var(("regime",), "float64", units, desc)
           for name, (units, desc) in {
               "v_rmse_sub": ("mV", "subthreshold soma voltage RMSE (spikes cut out)"),
               "v_explained_variance_sub": ("1", "explained variance, subthreshold voltage"),
               "v_r": ("1", "Pearson r of the whole voltage trace, spikes included"),
               "spike_precision": ("1", "matched predicted / predicted spikes (+/-2 ms)"),
               "spike_recall": ("1", "matched NEURON / NEURON spikes (+/-2 ms)"),
               "spike_f1": ("1", "F1 of spike timing (+/-2 ms)"),
               "spike_f1_5ms": ("1", "spike F1 within +/-5 ms (what timing costs over 2-5 ms)"),
               "spike_f1_50ms": ("1", "spike F1 within +/-50 ms (nearly a count: what is "
                                      "left is spikes missed or added)"),
               "rate_error": ("1", "|predicted - NEURON spike count| / NEURON spike count"),
               "n_spikes_true": ("1", "NEURON spikes"),
               "n_spikes_pred": ("1", "surrogate spikes"),
               "dipole_r": ("1", "Pearson r of the dipole (NaN: no dipole)"),
               "dipole_rmse": ("nAm", "RMSE of the dipole"),
           }.items()},
        # surrogates with section-voltage outputs (train.section_weight) only
        "section_v_r": Var(("regime",), "float64", "1",
                           "Pearson r of the section voltages (every section but the soma, "
                           "spikes included)", optional=True),
        "dipole_r_sections": Var(("regime",), "float64", "1",
                                 "Pearson r of the dipole read out of the predicted section "
                                 "and soma voltages (least squares on NEURON's training "
                                 "split) against NEURON's", optional=True),
        # pyramidal cells: every held-out cell of a network run summed (NaN: no runs)
        "dipole_sum_r": Var(("regime",), "float64", "1",
                            "Pearson r of the run-summed dipole (every held-out cell of a "
                            "network run, after 100 ms), mean over runs", optional=True),
        **{f"band_error_{b}": Var(("regime",), "float64", "1",
                                  f"|surrogate - NEURON| / NEURON of the run-summed dipole's "
                                  f"{b} fraction of 1-100 Hz power, mean over runs",
                                  optional=True)
           for b in ("alpha", "beta", "gamma")},
        "band_within": Var(("regime",), "float64", "1",
                           "share of (run, band) pairs whose fraction is within 20 % of "
                           "NEURON's (the network comparison's tolerance)", optional=True),
        # pyramidal cells, every regime: where in frequency a cell's dipole error lies
        **{f"dipole_error_{b}": Var(("regime",), "float64", "1",
                                    f"each cell's dipole error power in the {b} band over "
                                    "the true dipole's power there, summed over the cells "
                                    "(NaN: under 1 % of the true power in the band)",
                                    optional=True)
           for b in ("alpha", "beta", "gamma", "fast")},
    },
)

SURROGATE_BENCHMARK = Schema(
    name="surrogate_benchmark",
    version=2,
    attrs=("device", "n_bins", "git_commit", "versions", "created"),
    variables={
        "cell_type": Var(("cell_type",), "str", "1", "HNN cell type"),
        "dtype": Var(("dtype",), "str", "1", "surrogate arithmetic: float32 or bfloat16"),
        "batch": Var(("batch",), "int32", "1", "cells stepped together"),
        "neuron_ms_per_s": Var(("cell_type",), "float64", "ms/s",
                               "NEURON: simulated cell-ms per wall second, one core", timing=True),
        "surrogate_ms_per_s": Var(("cell_type", "dtype", "batch"), "float64", "ms/s",
                                  "surrogate streaming step: simulated cell-ms per wall second", timing=True),
        "speedup": Var(("cell_type", "dtype", "batch"), "float64", "1",
                       "surrogate / NEURON throughput", timing=True),
        "bf16_v_rms_diff": Var(("cell_type",), "float64", "mV",
                               "bfloat16 vs float32 voltage head, RMS over held-out sims"),
        "bf16_spike_agreement": Var(("cell_type",), "float64", "1",
                                    "share of float32 spikes that bfloat16 puts in the same bin"),
    },
)

SURROGATE_PANELS = Schema(
    name="surrogate_panels",
    version=1,
    attrs=("cell_type", "inputs", "ap_peak_neuron_mv", "ap_peak_surrogate_mv",
           "ap_half_width_neuron_ms", "ap_half_width_surrogate_ms", "git_commit", "versions",
           "created"),
    variables={
        "n_inputs": Var(("n_inputs",), "int32", "1", "synchronous subthreshold inputs"),
        "spread": Var(("spread",), "float64", "ms", "time spread of the inputs"),
        "weight_factor": Var(("weight_factor",), "float64", "1",
                             "single-input weight / calibrated threshold weight"),
        "ap_lag": Var(("ap_lag",), "float64", "ms", "time from the spike"),
        "example": Var(("example",), "int32", "1", "example index"),
        "time": Var(("time",), "float64", "ms", "bin start"),
        "sync_peak_neuron": Var(("n_inputs",), "float64", "mV", "peak depolarisation, NEURON"),
        "sync_peak_surrogate": Var(("n_inputs",), "float64", "mV", "peak depolarisation, surrogate"),
        "spread_peak_neuron": Var(("spread",), "float64", "mV", "peak depolarisation, NEURON"),
        "spread_peak_surrogate": Var(("spread",), "float64", "mV", "peak depolarisation, surrogate"),
        "threshold_fired_neuron": Var(("weight_factor",), "float64", "1", "1 if NEURON fired"),
        "threshold_fired_surrogate": Var(("weight_factor",), "float64", "1",
                                         "1 if the surrogate predicted a spike"),
        "threshold_p_surrogate": Var(("weight_factor",), "float64", "1",
                                     "largest spike-head probability"),
        "ap_neuron": Var(("ap_lag",), "float64", "mV", "spike-triggered average voltage, NEURON (dt)"),
        "ap_surrogate": Var(("ap_lag",), "float64", "mV",
                            "spike-triggered average voltage, surrogate (bins, interpolated)"),
        "example_v_neuron": Var(("example", "time"), "float64", "mV", "soma voltage, NEURON"),
        "example_v_surrogate": Var(("example", "time"), "float64", "mV", "soma voltage, surrogate"),
        "example_dipole_neuron": Var(("example", "time"), "float64", "nAm", "dipole, NEURON",
                                     optional=True),
        "example_dipole_surrogate": Var(("example", "time"), "float64", "nAm",
                                        "dipole, surrogate", optional=True),
    },
)

LINEAR_BASELINE = Schema(
    name="linear_baseline",
    version=1,
    attrs=("cell_type", "split", "data_hash", "basis", "v_clip", "git_commit", "versions",
           "created"),
    variables={
        "fit": Var(("fit",), "str", "1", "pooled (one filter for all regimes) or per_regime"),
        "regime": Var(("regime",), "str", "1", "input regime, or 'all'"),
        "penalty": Var(("fit", "regime"), "float64", "1",
                       "ridge penalty chosen on the validation split (relative)"),
        **{name: Var(("fit", "regime"), var.dtype, var.units, var.description)
           for name, var in SURROGATE_METRICS.variables.items()
           if name in ("v_rmse_sub", "v_explained_variance_sub", "v_r", "dipole_r",
                       "dipole_rmse")},
    },
)
def _curve_metrics(dim: str) -> dict:
    """The surrogate metrics of the 'all' row (those every model has) along ``dim``:
    the variables of a curve of several models' metrics."""
    return {name: Var((dim,), var.dtype, var.units, var.description + " (all regimes)")
            for name, var in SURROGATE_METRICS.variables.items()
            if name not in ("regime", "n_sims") and not var.optional}


LEARNING_CURVE = Schema(
    name="learning_curve",
    version=2,  # 2: n_train is each model's whole-run subset, not round(fraction * split)
    attrs=("cell_type", "n_train_full", "git_commit", "versions", "created"),
    variables={
        "n_train": Var(("n_train",), "int32", "1", "training simulations"),
        "fraction": Var(("n_train",), "float64", "1", "fraction of the training split"),
        **_curve_metrics("n_train"),
    },
)

STEPS_CURVE = Schema(
    name="steps_curve",
    version=1,
    attrs=("cell_type", "steps_per_epoch", "git_commit", "versions", "created"),
    variables={
        "epoch": Var(("epoch",), "int32", "1", "epochs trained (snapshot)"),
        "steps": Var(("epoch",), "int64", "1", "optimiser steps trained"),
        **_curve_metrics("epoch"),
    },
)

_NET_ATTRS = ("simulator", "scenario", "condition", "seed", "tstop_ms", "bin_ms", "wall_s",
              "n_ranks", "git_commit", "versions", "created", "config_hash")

NETWORK_RUN = Schema(
    name="network_run",
    version=1,
    attrs=_NET_ATTRS,
    variables={
        "time": Var(("time",), "float64", "ms", "bin centre"),
        "layer": Var(("layer",), "str", "1", "agg (L2 + L5), L2 or L5 pyramidal cells"),
        "cell_type": Var(("cell_type",), "str", "1", "HNN cell type"),
        "gid_start": Var(("cell_type",), "int64", "1", "first gid of the cell type"),
        "n_cells": Var(("cell_type",), "int64", "1", "cells of the type"),
        "dipole": Var(("layer", "time"), "float64", "nAm",
                      "current dipole, mean over the bin, after hnn-core's baseline "
                      "renormalisation (not smoothed, not scaled)"),
        "dipole_processed": Var(("layer", "time"), "float64", "nAm",
                                "dipole after hnn-core's Dipole.smooth and Dipole.scale with "
                                "the config's postproc values"),
        "spike_time": Var(("spike",), "float64", "ms",
                          "somatic spike time (NEURON: exact; surrogate: bin centre)"),
        "spike_gid": Var(("spike",), "int64", "1", "hnn-core gid of the spiking cell"),
    },
)

NETWORK_COMPARISON = Schema(
    name="network_comparison",
    version=2,  # 2: the targets met, and NEURON against itself (half the seeds against
    # the other half; -1 with fewer than two seeds, where there is no such control)
    attrs=("scenario", "transient_ms", "targets_met", "targets_checked", "neuron_self_met",
           "git_commit", "versions", "created"),
    variables={
        "condition": Var(("condition",), "str", "1", "named change to the network"),
        "seed": Var(("seed",), "int64", "1", "drive seed"),
        "simulator": Var(("simulator",), "str", "1",
                         "neuron, surrogate or open_loop (surrogates fed NEURON's spikes)"),
        "cell_type": Var(("cell_type",), "str", "1", "HNN cell type"),
        "band": Var(("band",), "str", "1", "alpha 8-12, beta 13-30, gamma 30-60 Hz"),
        "freq": Var(("freq",), "float64", "Hz", "frequency of the power spectrum"),
        "rate": Var(("condition", "seed", "simulator", "cell_type"), "float64", "Hz",
                    "spikes per cell per second after the transient"),
        "peak_freq": Var(("condition", "seed", "simulator"), "float64", "Hz",
                         "frequency of the largest power of the aggregate dipole, 3-80 Hz"),
        "band_fraction": Var(("condition", "seed", "simulator", "band"), "float64", "1",
                             "band power / power 1-100 Hz of the aggregate dipole"),
        "dipole_power": Var(("condition", "seed", "simulator"), "float64", "nAm2",
                            "variance of the aggregate dipole after the transient"),
        "l5_share": Var(("condition", "seed", "simulator"), "float64", "1",
                        "variance of the L5 dipole / (variance L2 + variance L5)"),
        "psd": Var(("condition", "seed", "simulator", "freq"), "float64", "nAm2/Hz",
                   "power spectral density of the aggregate dipole (Hann-windowed)"),
    },
)

NETWORK_BENCHMARK = Schema(
    name="network_benchmark",
    version=2,
    attrs=("tstop_ms", "n_cells", "scenario", "device", "git_commit", "versions", "created"),
    variables={
        "run": Var(("run",), "str", "1", "neuron_1rank, neuron_2ranks, surrogate"),
        "wall_s": Var(("run",), "float64", "s",
                      "build + simulate, wall time (surrogate: median of its repeats)",
                      timing=True),
        "surrogate_wall_s": Var(("repeat",), "float64", "s",
                                "every surrogate run in the order run (half before NEURON's)",
                                timing=True),
        "cores": Var(("run",), "int32", "1", "cores used"),
        "speedup": Var(("run",), "float64", "1", "wall(neuron_1rank) / wall(run)", timing=True),
        "n_spikes": Var(("run",), "int64", "1", "spikes in the run"),
    },
)

_SCALING_RUN_VARS = {
    "run": Var(("run",), "str", "1",
               "surrogate_1thread, surrogate_2threads, neuron_1rank, neuron_2ranks"),
    "status": Var(("run",), "str", "1",
                  "ran, or why not: 'not run: above neuron.max_cells', 'not run: time limit'"),
    "cores": Var(("run",), "int32", "1", "torch threads or MPI ranks"),
    "wall_s": Var(("run",), "float64", "s", "set-up + warm-up + simulation", timing=True),
    "setup_s": Var(("run",), "float64", "s",
                   "building the network: hnn-core's cells and drives, the wiring or "
                   "NEURON's NetworkBuilder, loading the surrogates", timing=True),
    "warmup_s": Var(("run",), "float64", "s",
                    "surrogate: groups, queues and delivery tables before the first step "
                    "(NaN for NEURON)", timing=True),
    "sim_s": Var(("run",), "float64", "s", "simulating", timing=True),
    "sim_s_per_s": Var(("run",), "float64", "1", "simulation wall seconds per simulated second",
                       timing=True),
    "peak_rss_gb": Var(("run",), "float64", "GiB",
                       "peak resident memory of the run's processes (summed over MPI ranks)",
                       timing=True),
    "n_spikes": Var(("run",), "int64", "1", "spikes of all cells"),
    "rate_hz": Var(("run", "cell_type"), "float64", "Hz", "mean firing rate per cell type"),
    "peak_hz": Var(("run",), "float64", "Hz", "aggregate dipole's spectral peak (after the transient)"),
    "psd": Var(("run", "freq"), "float64", "nAm^2/Hz", "aggregate raw dipole's power spectrum"),
    "model_s": Var(("run",), "float64", "s",
                   "surrogate: stepping the models (NaN for NEURON)", timing=True),
    "deliver_s": Var(("run",), "float64", "s",
                     "surrogate: delivering spikes to their synapses (NaN for NEURON)", timing=True),
    "gflops": Var(("run",), "float64", "GFLOP/s",
                  "surrogate: matrix-product arithmetic per second of simulation", timing=True),
    "bound_fraction": Var(("run",), "float64", "1",
                          "surrogate: gflops / matrix-product peak at its threads", timing=True),
}

SCALING_POINT = Schema(
    name="scaling_point",
    version=1,
    attrs=("mesh", "n_cells", "n_synapses", "tstop_ms", "scenario", "seed", "cutoff",
           "flops_per_cell_bin", "device", "git_commit", "versions", "created"),
    variables={
        **_SCALING_RUN_VARS,
        "cell_type": Var(("cell_type",), "str", "1", "HNN cell type"),
        "freq": Var(("freq",), "float64", "Hz", "frequency"),
        "matmul_peak_gflops": Var(("run",), "float64", "GFLOP/s",
                                  "measured float32 matrix-product peak at the run's threads, "
                                  "the higher of before and after the run (NaN for NEURON)", timing=True),
    },
)

SCALING_SUMMARY = Schema(
    name="scaling_summary",
    version=1,
    attrs=("tstop_ms", "scenario", "cutoff", "device", "crossover_cells", "git_commit",
           "versions", "created"),
    variables={
        "size": Var(("size",), "int64", "1", "cells"),
        "mesh": Var(("size",), "int64", "1", "pyramidal grid side"),
        "n_synapses": Var(("size",), "int64", "1", "cell-to-cell synapse entries"),
        "run": Var(("run",), "str", "1", "as in scaling_point"),
        "status": Var(("size", "run"), "str", "1", "ran, or why not"),
        "wall_s": Var(("size", "run"), "float64", "s", "set-up + warm-up + simulation",
                      timing=True),
        "sim_s_per_s": Var(("size", "run"), "float64", "1", "simulation per simulated second",
                           timing=True),
        "peak_rss_gb": Var(("size", "run"), "float64", "GiB", "peak resident memory",
                           timing=True),
        "n_spikes": Var(("size", "run"), "int64", "1", "spikes"),
        "speedup": Var(("size", "run"), "float64", "1",
                       "neuron_1rank wall / this run's wall (NaN where either did not run)",
                       timing=True),
        "sim_speedup": Var(("size", "run"), "float64", "1",
                           "neuron_1rank simulation time / this run's (set-up left out)",
                           timing=True),
        "bound_fraction": Var(("size", "run"), "float64", "1",
                              "surrogate: fraction of the matrix-product peak", timing=True),
        "time_exponent": Var(("run",), "float64", "1",
                             "fitted d log(simulation time) / d log(cells) over the sizes it ran",
                             timing=True),
        "wall_exponent": Var(("run",), "float64", "1",
                             "fitted d log(wall time) / d log(cells)", timing=True),
        "memory_exponent": Var(("run",), "float64", "1",
                               "fitted d log(peak memory) / d log(cells)", timing=True),
    },
)

SCALING_CUTOFF = Schema(
    name="scaling_cutoff",
    version=1,
    attrs=("mesh", "tstop_ms", "scenario", "cutoff", "synapses_dense", "synapses_cut",
           "git_commit", "versions", "created"),
    variables={
        "seed": Var(("seed",), "int64", "1", "drive seed"),
        "cell_type": Var(("cell_type",), "str", "1", "HNN cell type"),
        "rate_dense": Var(("seed", "cell_type"), "float64", "Hz", "dense wiring (hnn-core's)"),
        "rate_cut": Var(("seed", "cell_type"), "float64", "Hz", "sparse wiring within the cutoff"),
        "rate_perturbed": Var(("seed", "cell_type"), "float64", "Hz",
                              "dense wiring, the first connection's weight x (1 + 1e-3): the "
                              "network's own sensitivity, the floor of any approximation"),
        "dipole_r": Var(("seed",), "float64", "1",
                        "correlation of the processed (smoothed) aggregate dipoles, cutoff vs "
                        "dense"),
        "dipole_r_perturbed": Var(("seed",), "float64", "1",
                                  "the same, perturbed dense vs dense"),
        "psd_r": Var((), "float64", "1",
                     "correlation of the seed-mean log power spectra (1-100 Hz), cutoff vs dense"),
        "peak_dense_hz": Var(("seed",), "float64", "Hz", "spectral peak, dense"),
        "peak_cut_hz": Var(("seed",), "float64", "Hz", "spectral peak, cutoff"),
    },
)

SCALING_BATCH = Schema(
    name="scaling_batch",
    version=1,
    attrs=("mesh", "n_cells", "tstop_ms", "scenario", "threads", "device",
           "matmul_peak_gflops", "git_commit", "versions", "created"),
    variables={
        "batch": Var(("batch",), "int64", "1", "networks stepped as one"),
        "seed": Var(("seed",), "int64", "1", "drive seed of each network"),
        "sim_s": Var(("batch",), "float64", "s", "the batch's simulation (set-up left out)",
                     timing=True),
        "prepare_s": Var(("batch",), "float64", "s",
                         "its warm-up: groups, queues, delivery tables", timing=True),
        "alone_sim_s": Var(("seed",), "float64", "s",
                           "each network simulated alone (the faster of a run before and one "
                           "after the batches)", timing=True),
        "throughput": Var(("batch",), "float64", "1",
                          "simulated network-seconds per second of simulation", timing=True),
        "speedup": Var(("batch",), "float64", "1",
                       "the batch's networks run alone (summed) / the batch, simulation time",
                       timing=True),
        "peak_rss_gb": Var(("batch",), "float64", "GiB",
                           "the process's peak resident memory after this batch (batches run "
                           "smallest first)", timing=True),
        "spikes_batched": Var(("batch", "seed"), "int64", "1",
                              "spikes of each network in the batch (-1: not in it)"),
        "spikes_alone": Var(("seed",), "int64", "1", "spikes of each network alone"),
        "identical": Var(("batch",), "int64", "1",
                         "1 where every network of the batch fired the spikes it fires alone "
                         "(same cells, same bins)"),
        "bound_fraction": Var(("batch",), "float64", "1",
                              "the batch's matrix-product arithmetic per second of simulation "
                              "over the float32 matmul peak at its threads", timing=True),
    },
)

DRIVE_SWEEP = Schema(
    name="drive_sweep",
    version=2,
    attrs=("scenario", "tstop_ms", "seed", "simulator", "git_commit", "versions", "created"),
    variables={
        "band": Var(("band",), "str", "1", "alpha 8-12, beta 13-30, gamma 30-60 Hz"),
        "cell_type": Var(("cell_type",), "str", "1", "HNN cell type"),
        "rate_constant": Var(("point",), "float64", "Hz", "Poisson rate per drive cell"),
        "weight_pyramidal": Var(("point",), "float64", "uS", "AMPA weight onto pyramidal cells"),
        "weight_basket": Var(("point",), "float64", "uS", "AMPA weight onto basket cells"),
        "peak_freq": Var(("point",), "float64", "Hz", "spectral peak of the aggregate dipole"),
        "band_fraction": Var(("point", "band"), "float64", "1", "band power / power 1-100 Hz"),
        "rate": Var(("point", "cell_type"), "float64", "Hz", "spikes per cell per second"),
    },
)

GRADIENT_HORIZON = Schema(
    name="gradient_horizon",
    version=1,
    attrs=("scenario", "condition", "seed", "loss", "config_hash", "git_commit", "versions",
           "created"),
    variables={
        "slope": Var(("slope",), "float64", "1/logit", "slope of the spike's surrogate gradient"),
        "tstop": Var(("tstop",), "float64", "ms", "simulated time"),
        "connection": Var(("connection",), "str", "1",
                          "net.connectivity entry: src->target loc receptor"),
        "sensitivity": Var(("slope", "tstop", "connection"), "float64", "1",
                           "|d log loss / d log (A_weight * gain)|"),
        "loss": Var(("tstop",), "float64", "nAm^2", "summed squared aggregate dipole"),
        "n_spikes": Var(("tstop",), "int64", "1", "spikes of the run"),
    },
)

FIT_TRAJECTORY = Schema(
    name="fit_trajectory",
    version=1,
    attrs=("start", "objective", "lr", "gain_low", "gain_high", "surrogate_slope", "tstop_ms",
           "transient_ms", "config_hash", "git_commit", "versions", "created"),
    variables={
        "step": Var(("step",), "int64", "1", "Adam step (0: the starting network)"),
        "seed": Var(("seed",), "int64", "1", "drive seed of the fit"),
        "free": Var(("free",), "str", "1", "free connection type: src->target receptor"),
        "free_src": Var(("free",), "str", "1", "source type (or drive name)"),
        "free_target": Var(("free",), "str", "1", "target cell type"),
        "free_receptor": Var(("free",), "str", "1", "receptor"),
        "cell_type": Var(("cell_type",), "str", "1", "HNN cell type"),
        "freq": Var(("freq",), "float64", "Hz", "frequency of the spectrum (<= 100 Hz)"),
        "objective": Var(("step", "seed"), "float64", "1",
                         "objective of the surrogate network's aggregate dipole (maximised)"),
        "gain": Var(("step", "free"), "float64", "1", "gain x the starting network's weight"),
        "grad": Var(("step", "free"), "float64", "1",
                    "d mean objective / d z (unconstrained variable); NaN at the last step"),
        "rate": Var(("step", "seed", "cell_type"), "float64", "Hz",
                    "spikes per cell per second after the transient"),
        "power": Var(("step", "seed", "freq"), "float64", "nAm2",
                     "periodogram (Hann) of the aggregate dipole after the transient"),
        "wall_s": Var(("step",), "float64", "s", "wall time of the step (all seeds)",
                      timing=True),
    },
)

HNN_SEARCH = Schema(
    name="hnn_search",
    version=1,
    attrs=("solver", "start", "objective", "budget_s", "best", "git_commit", "versions",
           "created"),
    variables={
        "evaluation": Var(("evaluation",), "int64", "1", "NEURON evaluation, in order (0: start)"),
        "seed": Var(("seed",), "int64", "1", "drive seed (the gradient fit's)"),
        "free": Var(("free",), "str", "1", "free connection type: src->target receptor"),
        "wall_s": Var(("evaluation",), "float64", "s",
                      "wall clock since the search began, at the end of the evaluation",
                      timing=True),
        "objective": Var(("evaluation", "seed"), "float64", "1",
                         "the fit's objective of the NEURON run (maximised)"),
        "best_so_far": Var(("evaluation",), "float64", "1",
                           "best seed-mean objective up to this evaluation"),
        "gain": Var(("evaluation", "free"), "float64", "1",
                    "gain x the starting network's weight"),
    },
)

FIT_BASELINE = Schema(
    name="fit_baseline",
    version=3,  # 2: the surrogates' cost counted, break-even fits; 3: gradient_ahead at
    # the fit's wall clock (was: against each search's whole run)
    attrs=("start", "objective", "fit_wall_s", "gradient_ahead", "surrogate_data_s",
           "surrogate_train_s", "surrogate_neuron_jobs", "break_even_fits", "break_even",
           "break_even_solver", "git_commit", "versions", "created"),
    variables={
        "method": Var(("method",), "str", "1", "gradient (the surrogate fit) or hnn-core's solver"),
        "wall_s": Var(("method",), "float64", "s",
                      "wall clock used: the fit's steps, or the search's evaluations",
                      timing=True),
        "neuron_objective": Var(("method",), "float64", "1",
                                "the fit's objective in NEURON on the fit seeds (mean): the "
                                "fitted gains' check, or the search's best evaluation"),
        "neuron_objective_at_fit_wall": Var(
            ("method",), "float64", "1",
            "the same, of evaluations finished within the gradient fit's wall clock"),
        "start_objective": Var(("method",), "float64", "1",
                               "the start's objective in NEURON on the fit seeds"),
        "n_evaluations": Var(("method",), "int64", "1",
                             "NEURON evaluations (gradient: the check's runs on fit seeds)"),
        "wall_to_gradient_s": Var(("method",), "float64", "s",
                                  "wall clock at which the best so far first reached the "
                                  "gradient fit's NEURON objective (NaN: never)", timing=True),
    },
)

FIT_STEP_BENCHMARK = Schema(
    name="fit_step_benchmark",
    version=3,  # 2: the ratio is the median of back-to-back pairs; 3: malloc recorded
    attrs=("start", "n_cells", "n_seeds", "tstop_ms", "threads", "device", "spikes",
           "grad_storage", "malloc", "git_commit", "versions", "created"),
    variables={
        "repeat": Var(("repeat",), "int64", "1", "repetition: a forward run, then a step"),
        "forward_s": Var((), "float64", "s", "median forward run of the seeds' batch, no "
                                             "gradient", timing=True),
        "step_s": Var((), "float64", "s", "median fit step: the run with gradients, the "
                                          "objective, backpropagation", timing=True),
        "ratio": Var((), "float64", "1", "median over the repeats of step / forward, each "
                                         "pair run back to back", timing=True),
        "forward_rss_gb": Var((), "float64", "GiB", "peak resident memory after the forward "
                                                    "runs", timing=True),
        "step_rss_gb": Var((), "float64", "GiB", "peak resident memory after the steps",
                           timing=True),
        "exact_rss_gb": Var((), "float64", "GiB",
                            "peak after one more step with gradients kept exact", timing=True),
        "grad_cosine": Var((), "float64", "1",
                           "cosine of the steps' gradient with the exact step's"),
        "forward_all_s": Var(("repeat",), "float64", "s", "each forward run", timing=True),
        "step_all_s": Var(("repeat",), "float64", "s", "each step", timing=True),
    },
)

FIT_CHECK = Schema(
    name="fit_check",
    version=2,  # 2: peak_beyond_band
    attrs=("start", "objective", "transient_ms", "transfer", "git_commit", "versions", "created"),
    variables={
        "condition": Var(("condition",), "str", "1", "default (the start) or fitted"),
        "seed": Var(("seed",), "int64", "1", "drive seed"),
        "fit_seed": Var(("seed",), "int8", "1", "1 if the fit used the seed, 0 if fresh"),
        "simulator": Var(("simulator",), "str", "1", "neuron or surrogate"),
        "cell_type": Var(("cell_type",), "str", "1", "HNN cell type"),
        "freq": Var(("freq",), "float64", "Hz", "frequency of the spectrum (<= 100 Hz)"),
        "objective": Var(("condition", "seed", "simulator"), "float64", "1",
                         "the fit's objective of the run's aggregate dipole"),
        "beta_alpha": Var(("condition", "seed", "simulator"), "float64", "1",
                          "power 13-30 Hz / power 8-12 Hz of the aggregate dipole"),
        "peak_freq": Var(("condition", "seed", "simulator"), "float64", "Hz",
                         "frequency of the largest power, 3-80 Hz"),
        "peak_beyond_band": Var(("condition", "seed", "simulator"), "int8", "1",
                                "1 if that largest power is on the band's first or last "
                                "frequency or under the power at 80-100 Hz: the spectrum's "
                                "peak is outside 3-80 Hz"),
        "rate": Var(("condition", "seed", "simulator", "cell_type"), "float64", "Hz",
                    "spikes per cell per second after the transient"),
        "power": Var(("condition", "seed", "simulator", "freq"), "float64", "nAm2",
                     "periodogram (Hann) of the aggregate dipole after the transient"),
    },
)

FIT_SUMMARY = Schema(
    name="fit_summary",
    version=2,  # 2: the NEURON fitted peak and the runs beyond its band
    attrs=("git_commit", "versions", "created"),
    variables={
        "point": Var(("point",), "str", "1", "grid point: start-objective-free-lr"),
        "start": Var(("point",), "str", "1", "starting network"),
        "neuron_change_fit": Var(("point",), "float64", "1",
                                 "objective change in NEURON, fit seeds (mean)"),
        "neuron_change_fresh": Var(("point",), "float64", "1",
                                   "objective change in NEURON, fresh seeds (mean; NaN if none)"),
        "surrogate_change": Var(("point",), "float64", "1",
                                "objective change with the surrogates, fit seeds (mean)"),
        "beta_alpha_gain": Var(("point",), "float64", "1",
                               "NEURON beta/alpha ratio fitted / start, fresh seeds (mean; all "
                               "seeds where there are no fresh ones)"),
        "transfer": Var(("point",), "float64", "1", "NEURON change / surrogate change"),
        "neuron_peak_fitted": Var(("point",), "float64", "Hz",
                                  "NEURON's fitted spectral peak in 3-80 Hz, median over seeds"),
        "neuron_peak_beyond": Var(("point",), "int64", "1",
                                  "NEURON's fitted runs whose spectrum peaks beyond 3-80 Hz "
                                  "(fit_check's peak_beyond_band)"),
        "rank": Var(("point",), "int64", "1",
                    "1: the largest NEURON change on fresh seeds (fit seeds where none)"),
    },
)

REPLAY_EVENTS = Schema(
    name="replay_events",
    version=1,
    attrs=("scenario", "condition", "seed", "tstop_ms", "run_file", "git_commit", "versions",
           "created"),
    variables={
        "gid": Var(("cell",), "int64", "1", "hnn-core gid of each cell of the network"),
        "cell_type": Var(("cell",), "str", "1", "HNN cell type of each cell"),
        "n_events": Var(("cell",), "int64", "1", "events the cell received"),
        "event_cell": Var(("event",), "int32", "1", "position of the receiving cell on 'cell'"),
        "event_channel": Var(("event",), "int16", "1",
                             "synapse channel (section, receptor) of the cell type, as in the "
                             "cells stage"),
        "event_arrival": Var(("event",), "float64", "ms",
                             "arrival time at the synapse (presynaptic time + delay)"),
        "event_weight": Var(("event",), "float32", "uS", "synaptic weight (A_weight x gain)"),
    },
)
