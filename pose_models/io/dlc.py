"""DeepLabCut files: predictions and labelled data, ``.h5`` and ``.csv``, single and multi-animal.

DeepLabCut stores a pandas DataFrame whose columns are a MultiIndex ``(scorer, [individuals,]
bodyparts, coords)`` with coords ``x, y[, likelihood]``. Prediction files are indexed by frame number
and carry ``likelihood``; labelled-data files (``CollectedData_<scorer>``) are indexed by image path
(one string, or the three levels ``labeled-data / <video> / <image>`` of DeepLabCut >= 2.2) and have
no likelihood. We write the same layout, so DeepLabCut itself reads our files.

sleap-io also reads DeepLabCut CSVs but returns zero frames for *prediction* CSVs without saying so;
we read both kinds with pandas and refuse to return an empty result.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import xarray as xr

from pose_models.io import PoseFileError, register_format
from pose_models.io.pandas_h5 import UnsafeFileError, read_pandas_h5
from pose_models.poses import from_numpy


class UnsafePoseFileError(PoseFileError):
    """A pose file holds pickled objects; it is refused unread (a pickle can run code)."""


HEADER_LEVELS = ("scorer", "individuals", "bodyparts", "coords")
H5_KEY = "df_with_missing"


# ------------------------------------------------------------------------------------------ reading


def _sniff_h5(path: Path) -> bool:
    """True if ``path`` is an HDF5 file holding a pandas table (DeepLabCut's layout)."""
    try:
        with h5py.File(path, "r") as f:
            return any("pandas_type" in f[k].attrs for k in f if isinstance(f[k], h5py.Group))
    except OSError:
        return False


def _sniff_csv(path: Path) -> bool:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        first = next(csv.reader(fh), [])
    return bool(first) and first[0].strip() == "scorer"


def _read_h5(path: Path) -> pd.DataFrame:
    # Never pd.HDFStore / read_hdf: they unpickle object columns and attributes, and these files come
    # from users. The array-level reader refuses anything pickled (UnsafeFileError, a PoseFileError).
    if not _sniff_h5(path):
        raise PoseFileError(f"{path}: expected a DeepLabCut .h5 (an HDF5 pandas table), got another file")
    with h5py.File(path, "r") as f:
        keys = [k for k in f if isinstance(f[k], h5py.Group) and "pandas_type" in f[k].attrs]
    key = H5_KEY if H5_KEY in keys else (keys[0] if len(keys) == 1 else None)
    if key is None:
        raise PoseFileError(f"{path}: expected one DeepLabCut table, got keys {['/' + k for k in keys]}")
    try:
        return read_pandas_h5(path, key)
    except UnsafeFileError as exc:
        raise UnsafePoseFileError(str(exc)) from exc


def _read_csv(path: Path) -> pd.DataFrame:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = []
        for row in csv.reader(fh):
            rows.append(row)
            if len(rows) == 5:
                break
    if not rows or rows[0][:1] != ["scorer"]:
        got = ",".join(rows[0][:3]) if rows else "an empty file"
        raise PoseFileError(f"{path}: expected a DeepLabCut CSV whose first row starts 'scorer,', got {got!r}")
    n_header = 0
    while n_header < len(rows) and rows[n_header] and rows[n_header][0] in HEADER_LEVELS:
        n_header += 1
    if n_header < 3 or rows[n_header - 1][0] != "coords":
        raise PoseFileError(
            f"{path}: expected header rows scorer,[individuals,]bodyparts,coords, got {[r[0] for r in rows[:n_header]]}"
        )
    # Labelled data written by DeepLabCut >= 2.2 has three index columns (empty header cells).
    n_index = 1
    while n_index < len(rows[0]) and rows[0][n_index] == "":
        n_index += 1
    df = pd.read_csv(path, header=list(range(n_header)), index_col=list(range(n_index)))
    df.columns = df.columns.set_names(list(rows[i][0] for i in range(n_header)))
    if n_index == 1:
        df.index.name = None
    else:
        df.index = df.index.set_names([None] * n_index)
    return df


def _frame_to_poses(df: pd.DataFrame, path: Path, fps: float | None) -> xr.Dataset:
    names = list(df.columns.names)
    if names[-1] != "coords" or "bodyparts" not in names or "scorer" not in names:
        raise PoseFileError(f"{path}: expected column levels scorer,[individuals,]bodyparts,coords, got {names}")
    if len(df) == 0:
        raise PoseFileError(f"{path}: holds no frames (a DeepLabCut table with 0 rows)")
    multi = "individuals" in names
    cols = df.columns
    bodyparts = list(dict.fromkeys(cols.get_level_values("bodyparts")))
    individuals = list(dict.fromkeys(cols.get_level_values("individuals"))) if multi else ["individual_0"]
    coords = list(dict.fromkeys(cols.get_level_values("coords")))
    space = [c for c in ("x", "y", "z") if c in coords]
    if space[:2] != ["x", "y"]:
        raise PoseFileError(f"{path}: expected coords x, y[, likelihood], got {coords}")
    unknown = set(coords) - {"x", "y", "z", "likelihood"}
    if unknown:
        raise PoseFileError(f"{path}: expected coords x, y, z, likelihood, got unknown {sorted(unknown)}")
    has_likelihood = "likelihood" in coords
    values = df.to_numpy(dtype=np.float64)
    n = len(df)
    position = np.full((n, len(space), len(bodyparts), len(individuals)), np.nan)
    confidence = np.full((n, len(bodyparts), len(individuals)), np.nan)
    present: list[list[str]] = []
    for j, col in enumerate(cols):
        c = dict(zip(names, col, strict=True))
        k = bodyparts.index(c["bodyparts"])
        i = individuals.index(c["individuals"]) if multi else 0
        if c["coords"] == "likelihood":
            confidence[:, k, i] = values[:, j]
        else:
            position[:, space.index(c["coords"]), k, i] = values[:, j]
            if c["coords"] == "x":
                present.append([individuals[i], bodyparts[k]])
    if not has_likelihood:
        confidence = None  # human labels: 1 where labelled, NaN where not (from_numpy's default)

    index = df.index
    images = None
    index_style = None
    if isinstance(index, pd.MultiIndex):
        images = ["/".join(str(p) for p in parts) for parts in index]
        frames = np.arange(n)
        index_style = "multi"
    elif pd.api.types.is_integer_dtype(index.dtype):
        frames = index.to_numpy(dtype=np.int64)
        if np.any(np.diff(frames) <= 0):
            raise PoseFileError(f"{path}: expected increasing frame numbers in the index, got unordered ones")
    else:
        images = [str(i) for i in index]
        frames = np.arange(n)
        index_style = "path"
    ds = from_numpy(
        position,
        confidence,
        keypoint_names=bodyparts,
        individual_names=individuals,
        fps=fps,
        frames=frames,
        images=images,
        source_software="DeepLabCut",
        source_file=str(path),
        kind="predictions" if has_likelihood else "labels",
    )
    ds.attrs["dlc_scorer"] = str(cols.get_level_values("scorer")[0])
    ds.attrs["dlc_multi_animal"] = int(multi)
    if index_style:
        ds.attrs["dlc_index_style"] = index_style
    full = len(present) == len(bodyparts) * len(individuals)
    if multi and not full:
        # maDLC files may give some bodyparts to only some individuals ("single" unique bodyparts).
        ds.attrs["dlc_columns"] = json.dumps(present)
    return ds


def load_dlc(path: Path, *, fps: float | None = None) -> xr.Dataset:
    """Read a DeepLabCut ``.h5`` or ``.csv`` (predictions or labelled data) into Poses."""
    df = _read_h5(path) if path.suffix.lower() == ".h5" else _read_csv(path)
    return _frame_to_poses(df, path, fps)


# ------------------------------------------------------------------------------------------ writing


def poses_to_dataframe(ds: xr.Dataset) -> pd.DataFrame:
    """Lay out a Poses dataset as DeepLabCut's DataFrame (columns, index and dtypes as DLC writes them)."""
    keypoints = [str(k) for k in ds["keypoints"].values]
    individuals = [str(i) for i in ds["individuals"].values]
    space = [str(s) for s in ds["space"].values]
    labels = ds.attrs.get("kind") == "labels"
    coords = space if labels else [*space, "likelihood"]
    multi = len(individuals) > 1 or bool(ds.attrs.get("dlc_multi_animal", 0))
    scorer = str(ds.attrs.get("dlc_scorer") or "painbattery")
    present = json.loads(ds.attrs["dlc_columns"]) if ds.attrs.get("dlc_columns") else None
    pos = ds["position"].values
    conf = ds["confidence"].values
    columns, data = [], []
    for i, ind in enumerate(individuals):
        for k, kp in enumerate(keypoints):
            if present is not None and [ind, kp] not in present:
                continue
            for c in coords:
                columns.append((scorer, ind, kp, c) if multi else (scorer, kp, c))
                data.append(conf[:, k, i] if c == "likelihood" else pos[:, space.index(c), k, i])
    level_names = ["scorer", "individuals", "bodyparts", "coords"] if multi else ["scorer", "bodyparts", "coords"]
    col_index = pd.MultiIndex.from_tuples(columns, names=level_names)
    if "image" in ds.coords:
        images = [str(p) for p in ds["image"].values]
        parts = [p.split("/") for p in images]
        if ds.attrs.get("dlc_index_style", "multi") == "multi" and all(len(p) == 3 for p in parts):
            index = pd.MultiIndex.from_tuples([tuple(p) for p in parts])
        else:
            index = pd.Index(images, dtype=object)
    else:
        index = pd.Index(ds["frame"].values.astype(np.int64))
    return pd.DataFrame(np.column_stack(data) if data else np.zeros((len(index), 0)), index=index, columns=col_index)


def save_dlc(ds: xr.Dataset, path: Path) -> None:
    """Write Poses as a DeepLabCut ``.h5`` (key ``df_with_missing``, table format) or ``.csv``."""
    df = poses_to_dataframe(ds)
    if path.suffix.lower() == ".h5":
        # As DeepLabCut does: predictions in table format, labelled data (whose index may be a
        # three-level MultiIndex, which table format cannot hold with MultiIndex columns) in fixed format.
        fmt = "fixed" if ds.attrs.get("kind") == "labels" else "table"
        df.to_hdf(path, key=H5_KEY, format=fmt, mode="w")
    else:
        df.to_csv(path)


register_format("dlc_h5", (".h5",), "a DeepLabCut .h5 file", load=load_dlc, save=save_dlc, sniff=_sniff_h5)
register_format("dlc_csv", (".csv",), "a DeepLabCut .csv file", load=load_dlc, save=save_dlc, sniff=_sniff_csv)
