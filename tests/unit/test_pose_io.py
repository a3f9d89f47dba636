"""Pose file interop on data with known values: exact round trips, format detection, clear errors."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pose_models.io import PoseFileError, detect_format, load_poses, save_poses
from pose_models.poses import from_numpy
from tests.fixtures.poses import labelled_frames, random_predictions

PREDICTION_SUFFIXES = [".h5", ".csv", ".slp", ".analysis.h5", ".nwb", ".nc"]


def assert_same_poses(a: xr.Dataset, b: xr.Dataset, atol: float = 1e-6) -> None:
    assert list(a["keypoints"].values) == list(b["keypoints"].values)
    assert list(a["individuals"].values) == list(b["individuals"].values)
    np.testing.assert_array_equal(a["frame"].values, b["frame"].values)
    np.testing.assert_allclose(a["position"].values, b["position"].values, atol=atol, equal_nan=True)
    np.testing.assert_allclose(a["confidence"].values, b["confidence"].values, atol=atol, equal_nan=True)


@pytest.mark.parametrize("suffix", PREDICTION_SUFFIXES)
@pytest.mark.parametrize("n_individuals", [1, 3])
def test_predictions_round_trip_exactly(tmp_path, suffix, n_individuals):
    ds = random_predictions(n_frames=40, n_keypoints=5, n_individuals=n_individuals, seed=n_individuals)
    path = save_poses(ds, tmp_path / f"poses{suffix}")
    back = load_poses(path, fps=30.0)
    assert_same_poses(ds, back)
    assert back.attrs["kind"] == "predictions"
    assert back.attrs["fps"] == 30.0


@pytest.mark.parametrize("suffix", [".slp", ".nc", ".analysis.h5"])
def test_stored_fps_and_skeleton_survive(tmp_path, suffix):
    ds = random_predictions(n_frames=10, fps=250.0)
    back = load_poses(save_poses(ds, tmp_path / f"p{suffix}"))
    assert back.attrs["fps"] == 250.0
    assert back.attrs["skeleton"] == [["kp0", "kp1"]]


def test_sparse_frames_round_trip_through_sleap(tmp_path):
    pos = np.random.default_rng(3).uniform(0, 100, (4, 2, 2, 1))
    ds = from_numpy(pos, np.full((4, 2, 1), 0.9), keypoint_names=["a", "b"], frames=[2, 7, 8, 30])
    for suffix in (".slp", ".h5", ".nc"):
        assert_same_poses(ds, load_poses(save_poses(ds, tmp_path / f"s{suffix}")))


@pytest.mark.parametrize("suffix", [".h5", ".csv", ".slp", ".nc"])
def test_labelled_frames_round_trip_with_image_paths(tmp_path, suffix):
    ds = labelled_frames()
    back = load_poses(save_poses(ds, tmp_path / f"CollectedData_me{suffix}"))
    assert back.attrs["kind"] == "labels"
    assert [str(p) for p in back["image"].values] == [str(p) for p in ds["image"].values]
    assert_same_poses(ds, back)
    assert np.isnan(back["position"].values[3, :, 1, 0]).all()  # the unlabelled point stays unlabelled


def test_dlc_layout_is_what_deeplabcut_reads(tmp_path):
    """DeepLabCut reads ``df_with_missing`` with levels scorer/bodyparts/coords; keep that exactly."""
    ds = random_predictions(n_frames=6, n_keypoints=2, nan_fraction=0)
    ds.attrs["dlc_scorer"] = "DLC_resnet50_testJan1shuffle1_1000"
    path = save_poses(ds, tmp_path / "videoDLC.h5")
    with pd.HDFStore(path, "r") as store:
        assert store.keys() == ["/df_with_missing"]
        df = store["df_with_missing"]
    assert df.columns.names == ["scorer", "bodyparts", "coords"]
    assert df.columns[:3].tolist() == [
        ("DLC_resnet50_testJan1shuffle1_1000", "kp0", "x"),
        ("DLC_resnet50_testJan1shuffle1_1000", "kp0", "y"),
        ("DLC_resnet50_testJan1shuffle1_1000", "kp0", "likelihood"),
    ]
    assert df.index.tolist() == list(range(6))
    multi = save_poses(random_predictions(n_frames=3, n_individuals=2), tmp_path / "ma.h5")
    assert pd.read_hdf(multi).columns.names == ["scorer", "individuals", "bodyparts", "coords"]
    csv_lines = save_poses(ds, tmp_path / "videoDLC.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in csv_lines[:4]] == ["scorer", "bodyparts", "coords", "0"]


def test_keypoint_order_is_kept_not_sorted(tmp_path):
    names = ["tail", "snout", "b_paw", "a_paw"]
    ds = from_numpy(np.ones((3, 2, 4, 1)), np.ones((3, 4, 1)) * 0.5, keypoint_names=names)
    for suffix in (".h5", ".csv", ".slp", ".nc", ".nwb", ".analysis.h5"):
        assert list(load_poses(save_poses(ds, tmp_path / f"o{suffix}"))["keypoints"].values) == names


def test_format_detection_sniffs_content(tmp_path):
    ds = random_predictions(n_frames=5)
    sleap_file = save_poses(ds, tmp_path / "x.analysis.h5")
    assert detect_format(sleap_file).name == "sleap_analysis_h5"
    assert detect_format(save_poses(ds, tmp_path / "x.h5")).name == "dlc_h5"
    renamed = tmp_path / "renamed.h5"  # a SLEAP analysis file without its double suffix
    renamed.write_bytes(sleap_file.read_bytes())
    with pytest.raises(PoseFileError, match="expected a DeepLabCut .h5 file"):
        load_poses(renamed)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("poses.txt", b"x", "expected a pose file ending in one of"),
        ("poses.h5", b"", "file is empty"),
        ("poses.h5", b"not hdf5 at all", "expected a DeepLabCut .h5 file"),
        ("poses.csv", b"frame,x,y\n0,1,2\n", "expected a DeepLabCut .csv file"),
        ("poses.slp", b"plain text", "expected a SLEAP .slp"),
        ("poses.nc", b"plain text", "expected a netCDF-4"),
        ("poses.nwb", b"plain text", "expected an NWB"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PoseFileError) as info:
        load_poses(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_and_empty_tables_are_errors_not_empty_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="pose file not found"):
        load_poses(tmp_path / "nope.h5")
    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_text("scorer,me,me,me\nbodyparts,paw,paw,paw\ncoords,x,y,likelihood\n")
    with pytest.raises(PoseFileError, match="holds no frames"):
        load_poses(empty_csv)
    ds = random_predictions(n_frames=3, nan_fraction=0)
    ds["position"][:] = np.nan  # nothing tracked: no SLEAP instance in any frame
    slp = save_poses(ds, tmp_path / "empty.slp")
    with pytest.raises(PoseFileError, match="no labelled frames"):
        load_poses(slp)


def test_save_leaves_nothing_half_written(tmp_path):
    ds = labelled_frames()
    with pytest.raises(PoseFileError, match="analysis.h5 holds the frames of one video"):
        save_poses(ds, tmp_path / "labels.analysis.h5")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(PoseFileError, match="expected a pose file ending"):
        save_poses(ds, tmp_path / "labels.xlsx")


def test_sleap_user_instances_win_over_predictions(tmp_path):
    import sleap_io as sio

    skeleton = sio.Skeleton(["a", "b"])
    video = sio.Video(filename="v.mp4", open_backend=False)
    user = sio.Instance.from_numpy(np.array([[1.0, 2.0], [3.0, 4.0]]), skeleton=skeleton)
    pred = sio.PredictedInstance.from_numpy(
        np.array([[9.0, 9.0], [9.0, 9.0]]), skeleton=skeleton, point_scores=np.array([0.3, 0.4]), score=0.35
    )
    labels = sio.Labels(
        labeled_frames=[
            sio.LabeledFrame(video=video, frame_idx=0, instances=[pred, user]),
            sio.LabeledFrame(video=video, frame_idx=1, instances=[pred]),
        ],
        videos=[video],
        skeletons=[skeleton],
    )
    path = tmp_path / "mixed.slp"
    sio.save_slp(labels, str(path), verbose=False)
    ds = load_poses(path)
    np.testing.assert_allclose(ds["position"].values[0, :, :, 0], [[1.0, 3.0], [2.0, 4.0]])
    np.testing.assert_allclose(ds["confidence"].values[:, :, 0], [[1.0, 1.0], [0.3, 0.4]])
    assert ds.attrs["kind"] == "predictions"  # not every frame is human-labelled


def test_h5_file_is_closed_after_reading(tmp_path):
    path = save_poses(random_predictions(n_frames=3), tmp_path / "c.h5")
    load_poses(path)
    with h5py.File(path, "a"):  # would fail if a reader still held the file open
        pass
