"""Real DeepLabCut, SLEAP and deepof files from ../shared/data: read them all, round-trip them exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from behavior.video import probe_video
from pose_models.io import load_poses, save_poses

pytestmark = pytest.mark.realdata

DEEPOF = "deepof-tests/tests/test_examples"
OPENFIELD = "dlc-examples/examples/openfield-Pranav-2018-10-30"
# (relative path, frames, keypoints, individuals, kind)
FILES = [
    (f"{OPENFIELD}/labeled-data/m4s1/CollectedData_Pranav.h5", 116, 4, 1, "labels"),
    (f"{OPENFIELD}/labeled-data/m4s1/CollectedData_Pranav.csv", 116, 4, 1, "labels"),
    (
        "bsoid/yttri-bottomup_dlc-model/examples/raw_clip1DLC_resnet50_OpenFieldHighResApr8shuffle1_1030000.h5",
        7200,
        6,
        1,
        "predictions",
    ),
    (
        "bsoid/yttri-bottomup_dlc-model/examples/raw_clip2DLC_resnet50_OpenFieldHighResApr8shuffle1_1030000.csv",
        7200,
        6,
        1,
        "predictions",
    ),
    (f"{DEEPOF}/test_single_topview/Tables/testDLC_h5_table.h5", 100, 14, 1, "predictions"),
    (f"{DEEPOF}/test_single_topview/Tables/testDLC_csv_table.csv", 97, 14, 1, "predictions"),
    (f"{DEEPOF}/test_madlc_topview/Tables/testDLC_h5_table_madlc.h5", 100, 14, 2, "predictions"),
    (f"{DEEPOF}/test_madlc_topview/Tables/testDLC_csv_table_madlc.csv", 97, 14, 2, "predictions"),
    (f"{DEEPOF}/test_multi_topview/Tables/testDLC_h5_table_multi.h5", 100, 28, 1, "predictions"),
    (f"{DEEPOF}/test_single_topview/Tables/SLEAP/testDLC_sleap.slp", 101, 14, 1, "predictions"),
    (f"{DEEPOF}/test_single_topview/Tables/SLEAP/testDLC_sleap.analysis.h5", 101, 14, 1, "predictions"),
    ("pain-pipeline-sleap-slp/test-files/C57_left_right.v000.slp", 197, 3, 2, "predictions"),
    (
        "prj-mouse-pain-cfa/Videos/shortened_2023-10-25_CFA_010_267M_trackingDLC_resnet50_"
        "pawtracking_comparisionMay7shuffle1_500000.h5",
        1080,
        6,
        1,
        "predictions",
    ),
]


def same(a, b, *, names: bool = True) -> None:
    assert list(a["keypoints"].values) == list(b["keypoints"].values)
    if names:
        assert list(a["individuals"].values) == list(b["individuals"].values)
    np.testing.assert_array_equal(a["frame"].values, b["frame"].values)
    np.testing.assert_allclose(a["position"].values, b["position"].values, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(a["confidence"].values, b["confidence"].values, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize(("rel", "frames", "keypoints", "individuals", "kind"), FILES, ids=lambda v: str(v)[-40:])
def test_reads_real_files(shared_data, rel, frames, keypoints, individuals, kind):
    ds = load_poses(shared_data / rel)
    assert ds.sizes["time"] == frames
    assert ds.sizes["keypoints"] == keypoints
    assert ds.sizes["individuals"] == individuals
    assert ds.attrs["kind"] == kind
    assert np.isfinite(ds["position"].values).any()


def test_dlc_values_and_keypoint_order_match_pandas(shared_data):
    path = shared_data / FILES[2][0]
    ds = load_poses(path)
    df = pd.read_hdf(path)
    bodyparts = list(dict.fromkeys(df.columns.get_level_values("bodyparts")))
    assert list(ds["keypoints"].values) == bodyparts  # file order, not sorted
    scorer = df.columns.get_level_values("scorer")[0]
    np.testing.assert_array_equal(ds["position"].values[:, 0, 1, 0], df[(scorer, bodyparts[1], "x")].to_numpy())
    np.testing.assert_array_equal(ds["confidence"].values[:, 5, 0], df[(scorer, bodyparts[5], "likelihood")].to_numpy())


@pytest.mark.parametrize("rel", [f[0] for f in FILES], ids=lambda v: Path(v).name[-40:])
def test_dlc_h5_to_slp_to_dlc_h5_is_exact(shared_data, tmp_path, rel):
    ds = load_poses(shared_data / rel)
    back = load_poses(save_poses(load_poses(save_poses(ds, tmp_path / "x.slp")), tmp_path / "x.h5"))
    # A single-animal DeepLabCut table has no individuals level, so a SLEAP track name cannot survive it.
    same(ds, back, names=ds.sizes["individuals"] > 1)
    assert back.attrs["kind"] == ds.attrs["kind"]


@pytest.mark.parametrize("suffix", [".csv", ".nc", ".nwb", ".analysis.h5"])
@pytest.mark.parametrize("rel", [FILES[2][0], FILES[6][0], FILES[11][0]], ids=["bsoid", "madlc", "sleap"])
def test_real_predictions_round_trip_every_format(shared_data, tmp_path, rel, suffix):
    ds = load_poses(shared_data / rel)
    same(ds, load_poses(save_poses(ds, tmp_path / f"x{suffix}")))


def test_our_dlc_output_matches_the_original_table(shared_data, tmp_path):
    """Written DLC files hold the same DataFrame DeepLabCut wrote (same columns, index and values)."""
    src = shared_data / FILES[6][0]
    original = pd.read_hdf(src)
    ours = pd.read_hdf(save_poses(load_poses(src), tmp_path / "ours.h5"))
    assert ours.columns.equals(original.columns)
    np.testing.assert_array_equal(ours.index.to_numpy(), original.index.to_numpy())
    np.testing.assert_array_equal(ours.to_numpy(), original.to_numpy())


def test_sleap_io_reads_dlc_prediction_csv_as_zero_frames_but_we_do_not(shared_data):
    """The trap the issue names: sleap-io's DLC reader silently returns nothing for prediction CSVs."""
    import sleap_io as sio

    path = shared_data / FILES[3][0]
    assert len(sio.load_dlc(str(path)).labeled_frames) == 0
    assert load_poses(path).sizes["time"] == 7200


@pytest.mark.parametrize(
    "rel",
    [
        f"{OPENFIELD}/videos/m3v1mp4.mp4",
        "vame-sample/tests/tests_project_sample_data/cropped_video.mp4",
        "lupe2-app/behavior_videos/rearing.mp4",
        "eztrack/PracticeVideos/Freezing_calibration.wmv",
    ],
)
def test_real_videos_probe_cleanly(shared_data, rel):
    info = probe_video(shared_data / rel)
    assert info.n_frames > 0 and info.fps > 0 and info.width > 0
