"""Compare two result folders stage by stage: where do two runs of the pipeline differ?

Users rerun the pipeline on other machines and clusters. ``compare_results``
walks two ``results/`` folders in pipeline order (cells, replay inputs, NEURON
networks, training, evaluation, surrogate networks, comparisons, benchmarks)
and compares every NetCDF artifact variable by variable and every checkpoint
tensor by tensor. Timings (wall times and rates derived from them, marked in
the schemas) are reported apart: they differ from run to run by nature. The
first stage in that order with a difference is where the two runs part; what
follows from it differs as a consequence.

Verdicts per file: ``equal`` (every value bit for bit), ``close`` (within
``rtol``), ``differs`` (with the largest difference and where), ``timings``
(only timings differ), ``unreadable`` (a file refused or corrupt in either),
``only in A`` / ``only in B``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STAGES = (
    ("cells: calibration", "cells/calibration/*.nc"),
    ("NEURON network runs (the replay regime's and the comparison's)", "network/*/*/neuron_*.nc"),
    ("cells: replayed events", "cells/replay/*/*/*.nc"),
    ("cells: shards", "cells/shards/*/*/*.nc"),
    ("cells: merged data sets", "cells/*.nc"),
    ("train: checkpoints", "train/*.pt"),
    ("train: histories", "train/*_history.nc"),
    ("evaluate", "evaluate/*.nc"),
    ("evaluate: panels", "evaluate/panels/*.nc"),
    ("learning curve", "learning_curve/**"),
    ("network: surrogate runs", "network/*/*/surrogate_*.nc"),
    ("network: open-loop runs", "network/*/*/open_loop_*.nc"),
    ("network: comparisons", "network/*/comparison.nc"),
    ("network: gradient horizon", "network/gradient_horizon.nc"),
    ("benchmarks", "benchmarks/*.nc"),
)


BAD = ("differs", "unreadable", "only in A", "only in B")
"""Verdicts that make two result folders differ."""


@dataclass
class FileVerdict:
    stage: str
    path: str
    verdict: str
    detail: str = ""
    max_rel: float = 0.0


def _matches(rel: str, pattern: str) -> bool:
    """Glob match part by part (``*`` stays within a folder; a final ``**`` takes the rest)."""
    if pattern.endswith("/**"):
        return rel.startswith(pattern[:-2])
    parts, want = rel.split("/"), pattern.split("/")
    return len(parts) == len(want) and all(map(fnmatch.fnmatchcase, parts, want))


def _stage(rel: str) -> str | None:
    for name, pattern in STAGES:
        if _matches(rel, pattern):
            return name
    return None


def _files(root: Path) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".nc", ".pt") and not path.name.startswith("."):
            rel = path.relative_to(root).as_posix()
            if _stage(rel) is not None:
                out[rel] = path
    return out


def _diff(a: np.ndarray, b: np.ndarray, rtol: float):
    """(verdict, detail, largest relative difference) of two arrays."""
    if a.shape != b.shape:
        return "differs", f"shape {a.shape} vs {b.shape}", np.inf
    if a.dtype.kind in "OUS" or b.dtype.kind in "OUS":
        same = np.array_equal(a.astype(str), b.astype(str))
        return ("equal", "", 0.0) if same else ("differs", "text differs", np.inf)
    if np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
        return "equal", "", 0.0
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    d = np.abs(a64 - b64)
    d[np.isnan(a64) & np.isnan(b64)] = 0.0
    scale = np.maximum(np.abs(a64), np.abs(b64))
    rel = np.where(scale > 0, d / np.where(scale > 0, scale, 1.0), 0.0)
    worst = float(np.nanmax(rel)) if rel.size else 0.0
    if np.isnan(d).any():
        worst = np.inf
    detail = f"max |diff| {np.nanmax(d):.3g}, max rel {worst:.3g}"
    return ("close" if worst <= rtol else "differs"), detail, worst


def _compare_netcdf(pa: Path, pb: Path, rtol: float):
    import xarray as xr

    from . import artifacts

    with xr.open_dataset(pa) as da, xr.open_dataset(pb) as db:
        kind = da.attrs.get("artifact")
        schema = next((s for s in vars(artifacts).values()
                       if isinstance(s, artifacts.Schema) and s.name == kind), None)
        names = sorted(set(map(str, da.variables)) | set(map(str, db.variables)))
        worst, first, timing_only = ("equal", "", 0.0), None, False
        for name in names:
            if name not in da.variables or name not in db.variables:
                return "differs", f"variable {name} in one file only", np.inf
            verdict, detail, rel = _diff(da[name].values, db[name].values, rtol)
            if verdict == "equal":
                continue
            if schema is not None and schema.timing(name):
                timing_only = True
                continue
            if rel >= worst[2]:
                worst = (verdict, f"{name}: {detail}", rel)
            first = first or name
        if first is None:
            return ("timings", "only timings differ", 0.0) if timing_only else worst
        return worst


def _compare_checkpoint(pa: Path, pb: Path, rtol: float):
    from .surrogate.checkpoint import safe_load

    a, b = safe_load(pa), safe_load(pb)
    worst = ("equal", "", 0.0)
    for key in sorted(set(a) | set(b)):
        if key in ("train_wall_s", "train_cost_s", "data_neuron_jobs",
                   "data_merge_s"):  # timings
            continue
        if key not in a or key not in b:
            return "differs", f"key {key} in one file only", np.inf
        if key == "state_dict":
            for name in sorted(set(a[key]) | set(b[key])):
                if name not in a[key] or name not in b[key]:
                    return "differs", f"weight {name} in one file only", np.inf
                verdict, detail, rel = _diff(a[key][name].numpy(), b[key][name].numpy(), rtol)
                if verdict != "equal" and rel >= worst[2]:
                    worst = (verdict, f"weight {name}: {detail}", rel)
        elif a[key] != b[key]:
            va, vb = np.asarray(a[key], dtype=object), np.asarray(b[key], dtype=object)
            try:
                verdict, detail, rel = _diff(np.asarray(a[key], float), np.asarray(b[key], float),
                                             rtol)
            except (TypeError, ValueError):
                verdict, detail, rel = "differs", f"{va!s:.40} vs {vb!s:.40}", np.inf
            if verdict != "equal" and rel >= worst[2]:
                worst = (verdict, f"{key}: {detail}", rel)
    return worst


def compare_results(a, b, *, rtol: float = 0.0) -> list[FileVerdict]:
    """Every artifact of result folders ``a`` and ``b``, in pipeline order."""
    a, b = Path(a), Path(b)
    for root in (a, b):
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such result folder")
    fa, fb = _files(a), _files(b)
    order = {name: i for i, (name, _) in enumerate(STAGES)}
    out = []
    for rel in sorted(set(fa) | set(fb), key=lambda r: (order[_stage(r)], r)):
        stage = _stage(rel)
        if rel not in fb:
            out.append(FileVerdict(stage, rel, "only in A"))
            continue
        if rel not in fa:
            out.append(FileVerdict(stage, rel, "only in B"))
            continue
        compare = _compare_checkpoint if rel.endswith(".pt") else _compare_netcdf
        try:
            verdict, detail, rel_diff = compare(fa[rel], fb[rel], rtol)
        except (OSError, ValueError) as err:     # unreadable, refused, corrupt
            verdict, detail, rel_diff = "unreadable", str(err).splitlines()[0][:300], np.inf
        out.append(FileVerdict(stage, rel, verdict, detail, rel_diff))
    return out


def format_report(rows: list[FileVerdict], a, b, rtol: float) -> str:
    """Markdown: one line per stage, the files that differ, where the runs first part."""
    stages = list(dict.fromkeys(r.stage for r in rows))
    lines = [f"Results compared: A = {a}, B = {b} (tolerance rtol = {rtol:g}; timings apart)",
             "", "| stage | files | equal | close | timings only | differ | only in A / B |",
             "|---|---|---|---|---|---|---|"]
    for st in stages:
        mine = [r for r in rows if r.stage == st]
        count = {v: sum(r.verdict == v for r in mine)
                 for v in ("equal", "close", "timings", "differs", "unreadable", "only in A",
                           "only in B")}
        lines.append(f"| {st} | {len(mine)} | {count['equal']} | {count['close']} | "
                     f"{count['timings']} | {count['differs'] + count['unreadable']} | "
                     f"{count['only in A']} / {count['only in B']} |")
    bad = [r for r in rows if r.verdict in BAD]
    lines.append("")
    if not bad:
        lines.append("The two result folders are equal"
                     + (" within the tolerance" if any(r.verdict == "close" for r in rows)
                        else "") + " (timings aside).")
    else:
        first = bad[0]
        lines.append(f"First difference, in pipeline order: stage '{first.stage}', "
                     f"{first.path}: {first.verdict}"
                     + (f" ({first.detail})" if first.detail else "")
                     + ". Later stages may differ as its consequence.")
        lines += ["", "Files that differ:"] + [
            f"- {r.path}: {r.verdict}" + (f" ({r.detail})" if r.detail else "") for r in bad]
    return "\n".join(lines)
