"""Burrowing: synthetic tubes emptied at a set rate, scored from their (compressed) video."""

from __future__ import annotations

import numpy as np
import pytest

from behavior.assays import AssayConfigError, ReportContext, get_assay
from behavior.features.burrowing import (
    BurrowingConfig,
    TubeRegionError,
    burrowing_measures,
    extract_burrowing,
    score_burrowing_video,
)
from behavior.session import Session
from behavior.synthetic.base import simulate_clip, write_clip

# (seed, fraction of the initial substrate per min, latency s, duration s, animal in front of the tube s)
CASES = [
    (1, 0.02, 300.0, 3600.0, ()),
    (2, 0.009, 900.0, 3600.0, ((600.0, 1080.0), (2400.0, 2700.0))),  # hides the start of burrowing for minutes
    (3, 0.05, 120.0, 3600.0, ((60.0, 400.0),)),
    (4, 0.007, 600.0, 7500.0, ((3000.0, 3600.0),)),  # two hours: every checkpoint
]


def _truth_percent(rate: float, latency_s: float, t_s: float) -> float:
    return 100 * min(1.0, rate * max(0.0, t_s - latency_s) / 60)


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"seed{c[0]}")
def scored(request, tmp_path_factory):
    seed, rate, lat, dur, occ = request.param
    clip = simulate_clip(
        "burrowing",
        seed=seed,
        displaced_fraction_per_min=rate,
        latency_to_start_s=lat,
        duration_s=dur,
        occlusions_s=occ,
    )
    paths = write_clip(clip, tmp_path_factory.mktemp(f"burrow{seed}"))
    seen: list[float] = []
    result = score_burrowing_video(
        paths["video"], clip.truth["tube_roi"], clip.session.fps, BurrowingConfig(), progress=seen.append
    )
    return request.param, clip, result, seen


def test_percent_displaced_within_5_points_at_every_checkpoint(scored):
    (_seed, rate, lat, dur, _occ), clip, result, _ = scored
    m = {x.measure: x.value for x in result.measures}
    errors = {"end": m["displaced_percent"] - clip.truth["displaced_percent_end"]}
    for c in (30, 60, 120):
        name = f"displaced_percent_{c}min"
        if c * 60 <= dur:
            errors[name] = m[name] - _truth_percent(rate, lat, c * 60)
        else:
            assert name not in m and c in result.quality["checkpoints_after_end_min"]
    assert all(abs(e) <= 5 for e in errors.values()), errors


def test_latency_within_1_min(scored):
    (_seed, _rate, lat, _dur, _occ), _clip, result, _ = scored
    m = {x.measure: x.value for x in result.measures}
    assert abs(m["latency_to_start_min"] - lat / 60) <= 1.0


def test_frames_hidden_by_the_animal_are_left_out_and_counted(scored):
    _case, clip, result, _ = scored
    table = result.tables["burrowing_frames"]
    truth = np.asarray(clip.truth["occluded"])
    assert result.quality["frames_sampled"] == len(table) == clip.n_frames
    assert result.quality["frames_occluded"] == int(table["occluded"].sum())
    assert not table["occluded"][~truth].any()  # never leaves out a clear view
    if truth.any():
        assert table["occluded"][truth].mean() >= 0.8
    assert list(table.columns[:5]) == ["frame", "time_s", "fill_fraction", "occluded_fraction", "occluded"]


def test_time_burrowing_and_progress(scored):
    _case, clip, result, seen = scored
    m = {x.measure: x.value for x in result.measures}
    assert abs(m["burrowing_time_min"] - clip.truth["time_burrowing_s"] / 60) <= 6
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_measures_from_a_known_fill_series_and_grams():
    rng = np.random.default_rng(0)
    t = np.arange(0, 3601, 10.0)
    fill = 0.8 * (1 - np.minimum(1, 0.01 * np.maximum(0, t - 600) / 60)) + rng.normal(0, 0.004, t.size)
    kept = np.ones(t.size, bool)
    kept[100:130] = False  # hidden
    fill[100:130] = 0.0  # whatever the hidden frames say is not used
    config = BurrowingConfig(start_g=200.0)
    measures, displaced, _ = burrowing_measures(t, fill, kept, config, 3600.0)
    m = {x.measure: x.value for x in measures}
    assert m["displaced_percent"] == pytest.approx(50, abs=1.5)
    assert m["displaced_percent_30min"] == pytest.approx(20, abs=1.5)
    assert m["latency_to_start_min"] == pytest.approx(10, abs=0.5)
    assert m["displaced_g"] == pytest.approx(100, abs=3)
    assert np.all(np.diff(displaced) >= 0)
    weighed, *_ = burrowing_measures(t, fill, kept, BurrowingConfig(start_g=200.0, end_g=110.0), 3600.0)
    assert {x.measure: x.value for x in weighed}["displaced_g"] == 90.0


def test_a_tube_that_is_never_touched_has_no_latency(tmp_path):
    clip = simulate_clip("burrowing", seed=5, displaced_fraction_per_min=0.0, duration_s=1200.0)
    paths = write_clip(clip, tmp_path)
    result = score_burrowing_video(paths["video"], clip.truth["tube_roi"], clip.session.fps, BurrowingConfig())
    m = {x.measure: x.value for x in result.measures}
    assert abs(m["displaced_percent"]) <= 2 and "latency_to_start_min" not in m
    assert m["burrowing_time_min"] == 0 and result.quality["started"] is False


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    clip = simulate_clip("burrowing", seed=7, duration_s=900.0)
    return clip, write_clip(clip, tmp_path_factory.mktemp("short"))["video"]


def test_a_tube_region_outside_the_frame_is_one_clear_error(short_clip):
    clip, video = short_clip
    with pytest.raises(TubeRegionError, match=r"expected a tube region inside the 320x160 frame, got 300,10,50,20"):
        score_burrowing_video(video, (300, 10, 50, 20), clip.session.fps, BurrowingConfig())


def test_the_extractor_takes_the_tube_from_the_config_or_the_session(short_clip):
    clip, video = short_clip
    x, y, w, h = clip.truth["tube_roi"]
    session = Session(
        session_id="s1",
        animal_id="a1",
        group="Control",
        timepoint="baseline",
        assay="burrowing",
        fps=clip.session.fps,
        video=video,
    )
    with pytest.raises(TubeRegionError, match="expected a tube region"):
        extract_burrowing(None, session, BurrowingConfig())
    by_config = extract_burrowing(None, session, BurrowingConfig(tube_roi=(x, y, w, h)))
    if "roi" in Session.model_fields:  # the session's region: the tube itself, or the chamber the tube_roi is in
        by_session = extract_burrowing(None, session.model_copy(update={"roi": (x, y, w, h)}), BurrowingConfig())
        chamber = session.model_copy(update={"roi": (x - 5, y - 5, w + 10, h + 10)})
        nested = extract_burrowing(None, chamber, BurrowingConfig(tube_roi=(5, 5, w, h)))
        assert by_session.measures == by_config.measures == nested.measures


def test_the_config_is_strict():
    spec = get_assay("burrowing")
    assert spec.domain == "spontaneous" and not spec.needs_poses and spec.needs_video
    assert spec.load_config().checkpoints_min == [30.0, 60.0, 120.0]
    with pytest.raises(AssayConfigError, match="sample_intervall_s"):
        spec.load_config(["sample_intervall_s=5"])
    with pytest.raises(AssayConfigError, match="end_g"):
        spec.load_config(["end_g=10"])


def test_the_report_plots_substrate_over_time_per_group(tmp_path):
    import pandas as pd

    rows = []
    for i, group in enumerate(["Control", "CCI", "Control"]):
        sid = f"s{i}"
        (tmp_path / "sessions" / sid).mkdir(parents=True)
        t = np.arange(0, 3601, 60.0)
        pd.DataFrame({"time_s": t, "displaced_fraction_fit": np.minimum(1, t / (3000 + 1000 * i))}).to_csv(
            tmp_path / "sessions" / sid / "burrowing_frames.csv", index=False
        )
        rows.append({"session_id": sid, "group": group, "timepoint": "baseline", "assay": "burrowing"})
    ctx = ReportContext(measures=pd.DataFrame(rows), quality=pd.DataFrame(), out_dir=tmp_path)
    items = get_assay("burrowing").report(ctx)
    assert len(items) == 1 and items[0].png_base64 and "substrate" in items[0].title.lower()
