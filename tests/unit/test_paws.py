"""PAWS-like withdrawal kinematics on tracks with analytic truth, and the pain score on real tracks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from behavior.features.paws import (
    FEATURES,
    POST_FEATURES,
    StrainStandardizer,
    cross_validate_pain_score,
    noxious_labels,
    paw_features,
    track_from_poses,
    tracks_features,
)
from pose_models.io import load_poses

FPS = 2000.0


def withdrawal(height_mm=10.0, rise_s=0.05, shakes=0, shake_amp_mm=5.0, shake_period_s=0.02, guard_s=0.1, seed=0):
    """Rest, a half-sine rise to ``height_mm``, ``shakes`` sideways oscillations, a hold, a return, rest."""
    rng = np.random.default_rng(seed)
    rest = np.zeros(int(0.05 * FPS))
    t_rise = np.arange(int(rise_s * FPS)) / FPS
    rise = height_mm * np.sin(0.5 * np.pi * t_rise / rise_s)
    n_shake = int(shakes * shake_period_s * FPS)
    t_shake = np.arange(n_shake) / FPS
    shake_x = shake_amp_mm * np.sin(2 * np.pi * t_shake / shake_period_s)
    hold = np.full(int(guard_s * FPS), height_mm)
    t_down = np.arange(int(0.05 * FPS)) / FPS
    down = height_mm * np.cos(0.5 * np.pi * t_down / 0.05)
    y = np.r_[rest, rise, np.full(n_shake, height_mm), hold, down, rest]
    x = np.r_[rest, np.zeros(len(rise)), shake_x, np.zeros(len(hold) + len(down)), rest]
    return x + rng.normal(0, 0.01, len(x)), y + rng.normal(0, 0.01, len(y)), len(rest) + len(rise)


def test_height_peak_speed_and_distance_match_the_analytic_track():
    x, y, peak = withdrawal(height_mm=10.0, rise_s=0.05)
    f = paw_features(x, y, FPS)
    assert f["pre_max_height_mm"] == pytest.approx(10.0, abs=0.2)
    assert abs(f["peak_frame"] - peak) <= 0.01 * FPS  # within 10 ms of the true first peak
    # half-sine rise: peak speed = height * pi / (2 * rise time) = 314 mm/s (10 %: tracking noise)
    assert f["pre_max_y_speed_mm_s"] == pytest.approx(10.0 * np.pi / (2 * 0.05), rel=0.1)
    assert f["pre_distance_mm"] == pytest.approx(10.0, rel=0.1)
    assert f["post_n_shakes"] == 0
    # post-peak: 0.1 s held (guarding) + 0.05 s return
    assert f["post_guarding_s"] == pytest.approx(0.15, abs=0.02)


@pytest.mark.parametrize("n_shakes", [2, 4, 6])
def test_shakes_are_counted_and_timed(n_shakes):
    x, y, _ = withdrawal(shakes=n_shakes, shake_amp_mm=5.0, shake_period_s=0.02)
    f = paw_features(x, y, FPS)
    # each shake cycle turns the paw twice along its axis of motion
    assert 2 * n_shakes - 2 <= f["post_n_shakes"] <= 2 * n_shakes + 1
    assert f["post_shaking_s"] == pytest.approx(n_shakes * 0.02, abs=0.015)
    assert f["post_guarding_s"] == pytest.approx(0.15 + 0.02 * n_shakes - f["post_shaking_s"], abs=0.02)


def test_small_wiggles_are_not_shakes():
    x, y, _ = withdrawal(shakes=4, shake_amp_mm=1.0)  # 10 % of the peak height, below 35 %
    assert paw_features(x, y, FPS)["post_n_shakes"] == 0


def test_bigger_faster_withdrawals_score_higher_on_every_size_feature():
    small = paw_features(*withdrawal(height_mm=5.0, rise_s=0.08)[:2], FPS)
    big = paw_features(*withdrawal(height_mm=15.0, rise_s=0.04, shakes=3)[:2], FPS)
    for name in ("pre_max_height_mm", "pre_max_y_speed_mm_s", "post_distance_mm", "post_n_shakes"):
        assert big[name] > small[name]


def test_bad_tracks_raise():
    with pytest.raises(ValueError, match="no paw movement"):
        paw_features(np.zeros(500), np.zeros(500), FPS)
    x, y, _ = withdrawal()
    y[300] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        paw_features(x, y, FPS)
    table = pd.DataFrame({"track": [1] * 500, "frame": range(500), "x": 0.0, "y": 0.0})
    out = tracks_features(table, FPS)
    assert out["quality"][0].startswith("no paw movement") and np.isnan(out["pre_max_height_mm"][0])


def test_strain_standardizer_centres_each_strain():
    X = pd.DataFrame({"strain": ["a"] * 3 + ["b"] * 3, "f": [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]})
    z = StrainStandardizer(["f"]).fit(X).transform(X)[:, 0]
    np.testing.assert_allclose(z[:3], z[3:])
    unseen = StrainStandardizer(["f"]).fit(X).transform(pd.DataFrame({"strain": ["c"], "f": [11.0]}))
    assert unseen[0, 0] == pytest.approx((11.0 - 11.0) / np.std(X["f"]))


@pytest.mark.realdata
def test_jones2020_tracks_separate_noxious_from_innocuous(shared_data):
    """All 304 real tracks give features; mouse-grouped CV separates pinprick from swab/brush."""
    tracks = pd.read_csv(shared_data / "paws-jones2020" / "jones2020_tracks_long.csv")
    features = tracks_features(tracks, FPS)
    assert len(features) == 304 and (features["quality"] == "ok").all()
    medians = features.groupby(noxious_labels(features["stimulus"]))[list(FEATURES)].median()
    for name in ("pre_max_height_mm", "pre_max_y_speed_mm_s", "post_distance_mm"):
        assert medians.loc[1, name] > 1.5 * medians.loc[0, name]  # noxious withdrawals are bigger
    result = cross_validate_pain_score(
        features, noxious_labels(features["stimulus"]), features["mouse_id"], feature_names=POST_FEATURES
    )
    assert result.n_mice == 77
    assert result.accuracy > 0.75 and result.roc_auc > 0.8  # chance is 0.5


@pytest.mark.realdata
def test_reference_points_give_the_scale(shared_data):
    path = shared_data / "paws-osimon81-sleap-examples/inst/extdata/Example_6J_female_lp_manual.csv"
    poses = load_poses(path, fps=2000)
    x, h, px_per_mm = track_from_poses(poses, "center", reference=("objecta", "objectb"), reference_mm=40.0)
    a = poses["position"].sel(keypoints="objecta").values[:, :, 0]
    b = poses["position"].sel(keypoints="objectb").values[:, :, 0]
    assert px_per_mm == pytest.approx(np.median(np.linalg.norm(a - b, axis=1)) / 40.0)
    f = paw_features(x, h, 2000.0)
    assert 3.0 < f["pre_max_height_mm"] < 20.0  # a light-pinprick withdrawal of a mouse hind paw
