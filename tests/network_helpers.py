"""Small networks and untrained surrogates for the network and fit tests."""

from __future__ import annotations

import json

import numpy as np
import torch

from hnn_surrogate import CELL_TYPES, PYRAMIDAL_TYPES
from hnn_surrogate.cells.channels import channels
from hnn_surrogate.hnn_compat import instantiate_drives

BIN_MS = 0.5
TSTOP = 60.0


def untrained_surrogates(seed=0, sizes=None, taus=(), rest=False, kernels=False):
    """Small random (untrained) surrogates: real models, real checkpoints' layout.

    ``sizes``: {cell type: (hidden, lstm_hidden)} where it differs from (8, 8);
    ``taus``: time constants (bins) of a linear path, its readout random;
    ``rest``: models that start at rest, their learned start state random;
    ``kernels``: models that read conductances (each type's receptor kernels).
    """
    from hnn_surrogate.cells.channels import synaptic_times
    from hnn_surrogate.surrogate.checkpoint import FORMAT, LoadedSurrogate
    from hnn_surrogate.surrogate.model import Surrogate, SurrogateConfig

    out = {}
    for i, t in enumerate(CELL_TYPES):
        torch.manual_seed(seed + i)
        n_t = 2 if t in PYRAMIDAL_TYPES else 1
        hidden, lstm_hidden = (sizes or {}).get(t, (8, 8))
        rise, decay = synaptic_times(t) if kernels else ((), ())
        model = Surrogate(SurrogateConfig(n_channels=len(channels(t)), n_targets=n_t,
                                          hidden=hidden, dilations=(1, 2), lstm_hidden=lstm_hidden,
                                          linear_taus=tuple(taus), rest_start=rest,
                                          input_rise=tuple(r / BIN_MS for r in rise),
                                          input_decay=tuple(d / BIN_MS for d in decay)))
        with torch.no_grad():
            model.head.bias[-1] = 0.0           # spikes now and then, driven by input
            model.head.weight[-1] *= 20.0
            if taus:
                model.linear.readout.weight.normal_(0.0, 0.3)
                model.linear.readout.bias.normal_(0.0, 0.3)
            if rest:
                model.h0.normal_(0.0, 0.5)
                model.c0.normal_(0.0, 0.5)
        out[t] = LoadedSurrogate({
            "format": FORMAT, "model_config": model.config.to_dict(),
            "state_dict": model.state_dict(),
            "normalization": {"input_scale": [1e-3] * len(channels(t)),
                              "target_mean": [-65.0, 0.0][:n_t], "target_std": [5.0, 1e-4][:n_t],
                              "spike_kernels": np.ones((n_t, 4)).tolist(), "v_clip": -55.0},
            "cell_type": t, "channels": [c.key for c in channels(t)],
            "targets": ["v_soma", "dipole"][:n_t], "bin_ms": BIN_MS, "data_hash": "none",
            "train_config": {}, "epoch": 0, "spike_threshold": 0.5})
    return out


def tiny_spec(repo, tmp_path) -> dict:
    """The tiny config's network section plus bin_ms, also written to tmp_path/spec.json."""
    from hnn_surrogate.config import load_config

    cfg = load_config(repo / "config" / "tiny.yaml")
    spec = dict(cfg["network"], bin_ms=cfg["cells"]["bin_ms"])
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    return spec


def tiny_net(seed=1, rate=40.0, mesh=(2, 2)):
    from hnn_core import neymotin_2020_model

    net = neymotin_2020_model(mesh_shape=mesh)
    weights = {"L2_pyramidal": 4e-3, "L5_pyramidal": 4e-3, "L2_basket": 2e-3, "L5_basket": 2e-3}
    net.add_poisson_drive("noise", rate_constant=rate, location="proximal",
                          weights_ampa=weights, synaptic_delays=0.1, event_seed=seed)
    net.add_evoked_drive("evdist", mu=20.0, sigma=2.0, numspikes=1, location="distal",
                         weights_ampa={"L2_pyramidal": 1e-3, "L5_pyramidal": 1e-3},
                         synaptic_delays=0.1, event_seed=seed + 7)
    instantiate_drives(net, TSTOP)
    return net
