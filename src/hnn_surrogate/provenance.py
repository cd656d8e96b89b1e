"""Provenance attributes stamped on every artifact: versions, config hash, commit."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path

from . import __version__

_PACKAGES = ("hnn-core", "neuron", "numpy", "xarray", "netCDF4", "torch", "mpi4py")


def config_hash(section) -> str:
    """SHA-256 (first 16 hex digits) of a config section, key order ignored."""
    text = json.dumps(section, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def git_commit() -> str:
    """The commit of the source tree this package runs from ('unknown' if none)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    """Installed versions of the packages the results depend on."""
    out = {"hnn_surrogate": __version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def provenance_attrs(*, config_section=None, seed=None) -> dict[str, str | int]:
    """NetCDF global attributes describing how an artifact came to be."""
    attrs: dict[str, str | int] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": json.dumps(versions(), sort_keys=True),
    }
    if config_section is not None:
        attrs["config_hash"] = config_hash(config_section)
        attrs["config"] = json.dumps(config_section, sort_keys=True, default=str)
    if seed is not None:
        attrs["seed"] = int(seed)
    return attrs
