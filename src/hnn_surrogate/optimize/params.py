"""Free parameters of a connectivity fit: one gain per connection type, bounded.

A connection type is (source, target, receptor): hnn-core's connections of
that source and target type and receptor at every location share one gain
(15 cell-to-cell connection types in hnn-core's default network), and so may
a drive's (source: the drive's name) where the fit frees it. Each gain lives
in an unconstrained variable ``z``:

    gain = exp(log(low) + (log(high) - log(low)) * sigmoid(z))

so that no optimiser step can make a weight negative or leave [low, high]
(x the network's own ``A_weight * gain``). ``z = z_of(1)`` is the network as
built; with bounds symmetric in log (1/4, 4) that is z = 0.
"""

from __future__ import annotations

import numpy as np
import torch


def connection_type(conn) -> tuple[str, str, str]:
    """(source, target, receptor) of a wiring ``Connection``."""
    return (conn.src_type, conn.target_type, conn.receptor)


class FreeGains:
    """Bounded gains of chosen connection types of one network's wiring.

    Parameters
    ----------
    connections : list of ``wiring.Connection``
        Every connection of the network, in wiring order.
    free : list of (source, target, receptor)
        The connection types the fit may change; each must match at least one
        connection.
    low, high : float
        Bounds of every gain (x the network's own), ``0 < low < 1 < high``.
    """

    def __init__(self, connections, free, low: float, high: float):
        if not 0 < low < 1 < high:
            raise ValueError(f"gain bounds must satisfy 0 < low < 1 < high, got [{low}, {high}]")
        self.low, self.high = float(low), float(high)
        self.types = [tuple(t) for t in free]
        if not self.types:
            raise ValueError("no free connection type: nothing to fit")
        if len(set(self.types)) != len(self.types):
            raise ValueError(f"a connection type is listed twice in {self.types}")
        kinds = [connection_type(c) for c in connections]
        self.base = torch.tensor([c.scale for c in connections], dtype=torch.float64)
        # (n_connections,) index of each connection's free type, -1 when fixed
        index = np.full(len(connections), -1, dtype=np.int64)
        for i, t in enumerate(self.types):
            hits = [k for k, kind in enumerate(kinds) if kind == t]
            if not hits:
                known = sorted(set(kinds))
                raise KeyError(f"no connection {t[0]} -> {t[1]} {t[2]} in the network "
                               f"(known: {', '.join(' '.join(k) for k in known)})")
            index[hits] = i
        self.index = torch.from_numpy(index)

    @property
    def labels(self) -> list[str]:
        return [f"{s}->{t} {r}" for s, t, r in self.types]

    def z_of(self, gain) -> torch.Tensor:
        """The unconstrained values of ``gain`` (array, one per free type)."""
        g = torch.as_tensor(gain, dtype=torch.float64)
        lo, hi = np.log(self.low), np.log(self.high)
        u = (torch.log(g) - lo) / (hi - lo)
        if (u <= 0).any() or (u >= 1).any():
            raise ValueError(f"gains {g.tolist()} are not inside ({self.low}, {self.high})")
        return torch.log(u) - torch.log1p(-u)

    def initial(self) -> torch.Tensor:
        """z of the network as built (every gain 1), a leaf to optimise."""
        return self.z_of(np.ones(len(self.types))).clone().requires_grad_(True)

    def gains(self, z: torch.Tensor) -> torch.Tensor:
        lo, hi = np.log(self.low), np.log(self.high)
        return torch.exp(lo + (hi - lo) * torch.sigmoid(z))

    def scale(self, z: torch.Tensor) -> torch.Tensor:
        """``A_weight * gain`` of every connection (uS): the free ones multiplied."""
        g = torch.cat([torch.ones(1, dtype=z.dtype), self.gains(z)])
        return self.base.to(z.dtype) * g[self.index + 1]


def resolve_free(connections, free, cell_types) -> list[tuple[str, str, str]]:
    """The connection types a free-set config frees, sorted.

    ``free``: ``{"cells": bool, "drives": [drive names]}`` (``optimize.free_sets``),
    or an explicit list of (source, target, receptor).
    """
    kinds = sorted({connection_type(c) for c in connections})
    if not isinstance(free, dict):
        return [tuple(t) for t in free]
    out = [k for k in kinds if free.get("cells", True) and k[0] in cell_types]
    for drive in free.get("drives", []):
        mine = [k for k in kinds if k[0] == drive]
        if not mine:
            names = sorted({k[0] for k in kinds if k[0] not in cell_types})
            raise KeyError(f"free drive {drive!r}: the network has no such drive "
                           f"(drives: {', '.join(names) or 'none'})")
        out += mine
    return out
