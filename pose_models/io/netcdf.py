"""painbattery's own pose files: the Poses dataset as netCDF-4 (``.nc``), exact and self-describing.

netCDF attributes cannot hold ``None`` or nested lists, so ``None`` attributes are left out and
list-valued ones (the skeleton) are stored as JSON text; :func:`load_netcdf` restores both.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import xarray as xr

from pose_models.io import PoseFileError, register_format
from pose_models.poses import validate_poses

_JSON_ATTRS = ("skeleton",)
_OPTIONAL_ATTRS = ("fps", "source_file")


def save_netcdf(ds: xr.Dataset, path: Path) -> None:
    """Write a Poses dataset as netCDF-4 (h5netcdf engine)."""
    out = ds.copy()
    attrs = {}
    for key, value in ds.attrs.items():
        if value is None:
            continue
        attrs[key] = json.dumps(value) if key in _JSON_ATTRS else value
    out.attrs = attrs
    out.to_netcdf(path, engine="h5netcdf")


def load_netcdf(path: Path, *, fps: float | None = None) -> xr.Dataset:
    """Read a Poses netCDF file written by :func:`save_netcdf`."""
    if not h5py.is_hdf5(path):
        raise PoseFileError(f"{path}: expected a netCDF-4 (HDF5) file, got another file")
    with xr.open_dataset(path, engine="h5netcdf") as f:
        ds = f.load()
    if ds.attrs.get("ds_type") != "poses":
        got = ds.attrs.get("ds_type")
        raise PoseFileError(f"{path}: expected a painbattery poses netCDF (ds_type='poses'), got {got!r}")
    for key in _JSON_ATTRS:
        ds.attrs[key] = json.loads(ds.attrs.get(key, "[]"))
    for key in _OPTIONAL_ATTRS:
        ds.attrs.setdefault(key, None)
    if "image" in ds.coords:
        ds = ds.assign_coords(image=("time", ds["image"].values.astype(object)))
    if fps is not None:
        ds.attrs["fps"] = float(fps)
        ds = ds.assign_coords(time=ds["frame"].values / float(fps))
        ds.attrs["time_unit"] = "seconds"
    return validate_poses(ds)


register_format("netcdf", (".nc",), "a painbattery netCDF poses file", load=load_netcdf, save=save_netcdf)
