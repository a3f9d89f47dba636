"""Files from users are data, never code: crafted pose files whose pickles would run a command.

Each crafted file carries a pickle whose ``__reduce__`` calls ``os.system("touch MARKER")``. Reading it
the usual way (``pd.read_hdf``, PyTables attributes) would create MARKER; our readers must refuse it
(DeepLabCut .h5) or read past it as inert bytes (every other format), and MARKER must never appear.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from pose_models.io import PoseFileError, load_poses, save_poses
from pose_models.io.dlc import UnsafePoseFileError
from pose_models.io.pandas_h5 import UnsafeFileError, literal_pickle, read_pandas_h5
from tests.fixtures.poses import random_predictions

BIN = Path(sys.executable).parent / "painbattery"


class Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_pickle(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker), protocol=0)


def dlc_frame(n: int = 6) -> pd.DataFrame:
    cols = pd.MultiIndex.from_product(
        [["scorer1"], ["nose", "tail"], ["x", "y", "likelihood"]], names=["scorer", "bodyparts", "coords"]
    )
    return pd.DataFrame(np.random.default_rng(0).random((n, 6)), columns=cols)


def crafted_object_column(tmp_path: Path, marker: Path) -> Path:
    """A DeepLabCut-looking .h5 whose extra object column pickles the payload (``df.to_hdf`` does it)."""
    df = dlc_frame()
    df[("scorer1", "nose", "evil")] = [Payload(marker)] * len(df)
    path = tmp_path / "evilDLC_resnet50.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df.to_hdf(path, key="df_with_missing", format="fixed", mode="w")
    assert not marker.exists()
    return path


def crafted_table_attribute(tmp_path: Path, marker: Path) -> Path:
    """A real DeepLabCut prediction table whose PyTables ``info`` attribute is replaced by the payload."""
    path = tmp_path / "attrDLC_resnet50.h5"
    dlc_frame().to_hdf(path, key="df_with_missing", format="table", mode="w")
    with h5py.File(path, "r+") as f:
        f["df_with_missing"].attrs["info"] = np.bytes_(evil_pickle(marker))
    return path


def test_the_payload_is_live(tmp_path):
    """The crafted file really runs its command when read the usual way (so the tests below mean something)."""
    marker = tmp_path / "ran"
    path = crafted_object_column(tmp_path, marker)
    pd.read_hdf(path)
    assert marker.exists()


def test_dlc_h5_with_an_object_column_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    path = crafted_object_column(tmp_path, marker)
    with pytest.raises(UnsafePoseFileError, match="pickled Python objects"):
        load_poses(path, fps=30)
    assert not marker.exists()


def test_dlc_h5_with_a_pickled_attribute_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    path = crafted_table_attribute(tmp_path, marker)
    with pytest.raises(PoseFileError, match="pickled object"):
        load_poses(path, fps=30)
    assert not marker.exists()


def test_cli_info_and_convert_refuse_the_crafted_file(tmp_path):
    marker = tmp_path / "ran"
    path = crafted_object_column(tmp_path, marker)
    for args in (["info", str(path)], ["pose", "convert", str(path), str(tmp_path / "out.nc"), "--fps", "30"]):
        out = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        assert "pickled" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "out.nc").exists()


def test_literal_pickle_decodes_what_pytables_writes_and_refuses_globals():
    value = [(1, [("sc", "nose", "x"), ("sc", "nose", "y")])]
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        assert literal_pickle(pickle.dumps(value, protocol=protocol)) == value
        assert literal_pickle(pickle.dumps({1: {"names": ["a", None]}, "t": True}, protocol=protocol)) == {
            1: {"names": ["a", None]},
            "t": True,
        }
        with pytest.raises(UnsafeFileError, match="pickled object"):
            literal_pickle(pickle.dumps(Payload(Path("/nonexistent/x")), protocol=protocol))
        with pytest.raises(UnsafeFileError):
            literal_pickle(pickle.dumps(np.float64(1.5), protocol=protocol))  # numpy scalars name a global too


@pytest.mark.parametrize("fmt", ["table", "fixed"])
def test_array_level_reader_matches_pandas_on_plain_files(tmp_path, fmt):
    df = dlc_frame(12)
    if fmt == "fixed":  # labelled data: a three-level image-path index
        df.index = pd.MultiIndex.from_tuples([("labeled-data", "v", f"img{i:03d}.png") for i in range(12)])
    path = tmp_path / f"{fmt}.h5"
    df.to_hdf(path, key="df_with_missing", format=fmt, mode="w")
    ours = read_pandas_h5(path)
    pd.testing.assert_frame_equal(ours, pd.read_hdf(path), check_index_type=False, check_column_type=False)


@pytest.mark.parametrize("suffix", [".slp", ".analysis.h5", ".nwb", ".nc"])
def test_other_readers_never_unpickle_crafted_nodes(tmp_path, suffix):
    """Pickles planted as attributes and as a PyTables-style object array are read as bytes, never run."""
    marker = tmp_path / "ran"
    path = save_poses(random_predictions(n_frames=8), tmp_path / f"p{suffix}")
    payload = evil_pickle(marker)
    with h5py.File(path, "r+") as f:
        f.attrs["evil"] = np.bytes_(payload)
        for name, obj in [("", f)] + [(k, f[k]) for k in f if isinstance(f[k], h5py.Group)]:
            obj.attrs["evil_" + name] = np.bytes_(payload)
        evil = f.create_dataset("evil", data=np.frombuffer(payload, dtype=np.uint8))
        evil.attrs["CLASS"] = np.bytes_(b"VLARRAY")
        evil.attrs["PSEUDOATOM"] = np.bytes_(b"object")
    with contextlib.suppress(PoseFileError):  # refusing the altered file is fine; running its payload is not
        load_poses(path, fps=30)
    assert not marker.exists()


def crafted_odd_attribute(tmp_path: Path) -> Path:
    """A DeepLabCut table whose PyTables ``info`` attribute is a plain pickled list, not the dict pandas writes."""
    path = tmp_path / "oddDLC_resnet50.h5"
    dlc_frame().to_hdf(path, key="df_with_missing", format="table", mode="w")
    with h5py.File(path, "r+") as f:
        f["df_with_missing"].attrs["info"] = np.bytes_(pickle.dumps([1], protocol=0))
    return path


def test_a_pandas_table_with_attributes_of_the_wrong_type_is_a_pose_file_error(tmp_path):
    path = crafted_odd_attribute(tmp_path)
    with pytest.raises(ValueError, match="expected the layout DataFrame.to_hdf writes, got AttributeError"):
        read_pandas_h5(path)  # its documented error for a file that is not a pandas table of numbers
    with pytest.raises(PoseFileError, match="expected the layout"):
        load_poses(path, fps=30)


def crafted_deep_slp(tmp_path: Path) -> Path:
    """A SLEAP .slp whose metadata JSON nests 30,000 lists deep (the JSON decoder recurses past its limit)."""
    path = save_poses(random_predictions(n_frames=8), tmp_path / "deep.slp")
    with h5py.File(path, "r+") as f:
        f["metadata"].attrs["json"] = np.bytes_(b"[" * 30000 + b"]" * 30000)
    return path


def test_a_sleap_file_nested_past_the_recursion_limit_is_a_pose_file_error(tmp_path):
    with pytest.raises(PoseFileError, match="cannot be read as a SLEAP .slp file.*recursion"):
        load_poses(crafted_deep_slp(tmp_path), fps=30)
