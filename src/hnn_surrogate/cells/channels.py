"""The input channels of each HNN cell type: one per (section, receptor) synapse.

The order is hnn-core's own: sections in the order of ``Cell.sections``,
receptors in the order of each section's ``syns``. The key of a channel is
hnn-core's synapse key ``f"{section}_{receptor}"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .. import CELL_TYPES, PYRAMIDAL_TYPES
from .._check import check_option

EXCITATORY = ("ampa", "nmda")
INHIBITORY = ("gabaa", "gabab")


@dataclass(frozen=True)
class Channel:
    """One synapse of a cell: where (section) and what (receptor)."""

    section: str
    receptor: str

    @property
    def key(self) -> str:
        """hnn-core's synapse key, e.g. ``"apical_tuft_ampa"``."""
        return f"{self.section}_{self.receptor}"


def cell_template(cell_type: str):
    """Return a fresh hnn-core ``Cell`` of ``cell_type`` (hnn-core's own definition)."""
    check_option("cell_type", cell_type, CELL_TYPES)
    from hnn_core.cells_default import basket, pyramidal

    if cell_type in PYRAMIDAL_TYPES:
        return pyramidal(cell_name=cell_type)
    return basket(cell_name=cell_type)


@lru_cache(maxsize=None)
def channels(cell_type: str) -> tuple[Channel, ...]:
    """All (section, receptor) channels of ``cell_type`` in hnn-core's order."""
    cell = cell_template(cell_type)
    return tuple(
        Channel(section=name, receptor=receptor)
        for name, section in cell.sections.items()
        for receptor in section.syns
    )


@lru_cache(maxsize=None)
def sections(cell_type: str) -> tuple[str, ...]:
    """The sections of ``cell_type`` in hnn-core's order (``Cell.sections``): where
    ``record_sections`` records a voltage, at each section's midpoint (hnn-core's
    ``record_vsec``)."""
    return tuple(cell_template(cell_type).sections)


def synaptic_times(cell_type: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per channel, its receptor's Exp2Syn rise and decay time (ms), hnn-core's own
    (``Cell.synapses``): (rise times, decay times) in the order of ``channels``."""
    syn = cell_template(cell_type).synapses
    chans = channels(cell_type)
    return (tuple(float(syn[c.receptor]["tau1"]) for c in chans),
            tuple(float(syn[c.receptor]["tau2"]) for c in chans))


def channel_index(cell_type: str) -> dict[str, int]:
    """Map hnn-core synapse key -> channel index for ``cell_type``."""
    return {ch.key: i for i, ch in enumerate(channels(cell_type))}
