"""The Poses data model: the validating constructor and the helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pose_models.poses import (
    PosesValidationError,
    drop_low_confidence,
    from_numpy,
    interpolate_gaps,
    poses_summary,
    px_to_mm,
    select,
    validate_poses,
)
from tests.fixtures.poses import random_predictions


def test_schema_matches_movement():
    ds = random_predictions(n_frames=10, n_keypoints=3, n_individuals=2, fps=25.0)
    assert ds["position"].dims == ("time", "space", "keypoints", "individuals")
    assert ds["confidence"].dims == ("time", "keypoints", "individuals")
    assert ds.attrs["ds_type"] == "poses"
    assert ds.attrs["time_unit"] == "seconds"
    np.testing.assert_allclose(ds["time"].values, np.arange(10) / 25.0)
    assert list(ds["individuals"].values) == ["mouse0", "mouse1"]


def test_time_in_frames_without_fps_and_sparse_frames_kept():
    pos = np.zeros((3, 2, 1, 1))
    ds = from_numpy(pos, keypoint_names=["paw"], frames=[4, 9, 20])
    assert ds.attrs["time_unit"] == "frames"
    assert list(ds["time"].values) == [4, 9, 20]
    assert list(ds["frame"].values) == [4, 9, 20]


def test_default_confidence_is_one_where_known_and_nan_where_missing():
    pos = np.ones((2, 2, 2, 1))
    pos[1, :, 0, 0] = np.nan
    ds = from_numpy(pos, keypoint_names=["a", "b"])
    conf = ds["confidence"].values[:, :, 0]
    assert conf[0].tolist() == [1.0, 1.0]
    assert np.isnan(conf[1, 0]) and conf[1, 1] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"position": np.zeros((5, 2, 3))}, "expected position with 4 dims"),
        ({"position": np.zeros((5, 4, 2, 1))}, "expected 2 or 3 spatial"),
        ({"keypoint_names": ["a", "a"]}, "duplicates ['a']"),
        ({"keypoint_names": ["a"]}, "expected 2 keypoint names"),
        ({"individual_names": ["m1", "m2"]}, "expected 1 individual names"),
        ({"fps": 0}, "expected fps > 0"),
        ({"fps": float("nan")}, "expected fps > 0"),
        ({"confidence": np.full((5, 2, 1), -0.5)}, "expected confidence >= 0"),
        ({"confidence": np.ones((5, 2))}, "expected confidence of shape (5, 2, 1)"),
        ({"frames": [0, 1, 1, 2, 3]}, "strictly increasing"),
        ({"skeleton": [["a", "tail"]]}, "skeleton edges"),
        ({"position": np.full((5, 2, 2, 1), np.inf)}, "infinite"),
        ({"kind": "guesses"}, "expected kind"),
    ],
)
def test_constructor_rejects_bad_input(kwargs, message):
    args = {"position": np.zeros((5, 2, 2, 1)), "keypoint_names": ["a", "b"]}
    args.update(kwargs)
    with pytest.raises(PosesValidationError, match=None) as info:
        from_numpy(args.pop("position"), **args)
    assert message in str(info.value)


def test_validate_rejects_foreign_datasets():
    ds = random_predictions(n_frames=4)
    with pytest.raises(PosesValidationError, match="confidence"):
        validate_poses(ds.drop_vars("confidence"))
    with pytest.raises(PosesValidationError, match="dims"):
        validate_poses(ds.transpose("space", "time", "keypoints", "individuals"))


def test_select_keeps_order_and_prunes_skeleton():
    ds = random_predictions(n_frames=5, n_keypoints=4)
    out = select(ds, keypoints=["kp2", "kp0"])
    assert list(out["keypoints"].values) == ["kp2", "kp0"]
    np.testing.assert_array_equal(out["position"].values[:, :, 0], ds["position"].values[:, :, 2])
    assert out.attrs["skeleton"] == []  # kp0-kp1 lost kp1
    assert json.loads(out.attrs["log"])[-1]["operation"] == "select"
    with pytest.raises(KeyError, match="unknown \\['nose'\\]"):
        select(ds, keypoints=["nose"])


def test_drop_low_confidence_sets_exactly_the_low_points_to_nan():
    ds = random_predictions(n_frames=200, nan_fraction=0.0)
    out = drop_low_confidence(ds, threshold=0.5)
    low = ds["confidence"].values < 0.5
    assert np.isnan(out["position"].values[:, 0][low]).all()
    assert np.isfinite(out["position"].values[:, 0][~low]).all()
    assert 0.3 < low.mean() < 0.7  # the test data straddles the threshold
    with pytest.raises(ValueError, match="threshold"):
        drop_low_confidence(ds, threshold=1.5)


def test_interpolate_gaps_fills_short_interior_gaps_linearly_only():
    x = np.arange(20, dtype=float) * 2.0  # a paw moving 2 px per frame
    pos = np.stack([x, x + 100], axis=0)[None].transpose(2, 1, 0)[..., None]  # (20, 2, 1, 1)
    pos = pos.copy()
    pos[0, :, 0, 0] = np.nan  # leading gap: stays
    pos[5:8, :, 0, 0] = np.nan  # 3-frame gap: filled
    pos[10:16, :, 0, 0] = np.nan  # 6-frame gap: too long, stays
    ds = from_numpy(pos, keypoint_names=["paw"], fps=100)
    out = interpolate_gaps(ds, max_gap_frames=5)
    filled = out["position"].values[:, 0, 0, 0]
    np.testing.assert_allclose(filled[5:8], x[5:8])
    assert np.isnan(filled[0]) and np.isnan(filled[10:16]).all()
    conf = out["confidence"].values[:, 0, 0]
    assert np.isnan(conf[5:8]).all() and conf[4] == 1.0  # interpolated points were not observed


def test_px_to_mm_scales_and_refuses_twice():
    ds = random_predictions(n_frames=3, nan_fraction=0.0)
    out = px_to_mm(ds, px_per_mm=8.0)
    np.testing.assert_allclose(out["position"].values, ds["position"].values / 8.0)
    assert out.attrs["space_unit"] == "mm"
    with pytest.raises(ValueError, match="already in mm"):
        px_to_mm(out, 8.0)
    with pytest.raises(ValueError, match="px_per_mm > 0"):
        px_to_mm(ds, 0)


def test_summary_counts_missing_points():
    pos = np.ones((4, 2, 2, 1))
    pos[0, :, 0, 0] = np.nan
    summary = poses_summary(from_numpy(pos, keypoint_names=["a", "b"], fps=10))
    assert summary["frames"] == 4
    assert summary["missing_fraction"] == pytest.approx(1 / 8)
    assert summary["keypoints"] == ["a", "b"]
