"""Place preference from poses: zones, occupancy (times, entries, flicker, gaps), pairing and the score.

Ground truth comes from the synthetic two-chamber box (behavior/synthetic/place_preference.py): the
chamber of a frame is the side of the divider its centroid keypoint is on; times are frame counts / fps.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from behavior.assays import get_assay
from behavior.features.place_preference import (
    PlacePreferenceConfig,
    ZoneError,
    Zones,
    body_track,
    load_zones,
    paired_chamber_for,
    score_track,
)
from behavior.features.place_preference.occupancy import debounce, fill_gaps
from behavior.features.place_preference.pairing import preference_rows
from behavior.features.place_preference.zones import OUTSIDE, UNTRACKED
from behavior.pipeline import MEASURES_COLUMNS, study_measures
from behavior.session import Session
from behavior.synthetic.base import simulate_clip

SQUARE_L = [[10, 10], [160, 10], [160, 150], [10, 150]]
SQUARE_R = [[160, 10], [310, 10], [310, 150], [160, 150]]


def config(**kw) -> PlacePreferenceConfig:
    return get_assay("place_preference").load_config([f"{k}={v}" for k, v in kw.items()])


def measures_of(result) -> dict[str, float]:
    return {m.measure: m.value for m in result.measures}


def score_clip(clip, cfg=None, paired=None):
    cfg = cfg or config()
    zones = load_zones("synthetic_two_chamber")
    session = clip.session
    p, u = (paired, "left" if paired == "right" else "right") if paired else paired_chamber_for(session, cfg, zones)
    track = body_track(clip.poses, session, cfg)
    return score_track(track.xy_px, track.frames, track.dt_s, zones, p, u, cfg, px_per_mm=session.px_per_mm)


# ------------------------------------------------------------------------------------------ zones


def test_rig_zones_load_and_adjacent_chambers_share_an_edge():
    z = load_zones("synthetic_two_chamber")
    assert z.names == ("left", "right") and z.chambers == ("left", "right")
    z.check_frame(320, 160)


@pytest.mark.parametrize(
    ("zones", "message"),
    [
        ({"left": SQUARE_L, "right": [[150, 10], [310, 10], [310, 150], [150, 150]]}, "overlap by"),
        ({"left": SQUARE_L, "right": [[160, 10], [330, 10], [330, 150], [160, 150]]}, "inside the frame_size_px"),
        ({"left": [[10, 10], [float("nan"), 10], [160, 150]], "right": SQUARE_R}, "expected finite x, y"),
        ({"left": [[10, 10], [160, 10]], "right": SQUARE_R}, ">= 3 vertices"),
        ({"left": SQUARE_L, "paired": SQUARE_R}, "zone names"),
        ({"left": SQUARE_L}, "at least 2 zones"),
        ({"left": SQUARE_L, "right": [[160, 10], [160, 10], [160, 150]]}, "an area"),
    ],
)
def test_bad_zones_are_one_line_errors(zones, message):
    with pytest.raises(ZoneError, match=message) as err:
        Zones.from_mapping({"frame_size_px": [320, 160], "zones": zones}, source="z.yaml")
    assert "\n" not in str(err.value)


def test_identical_and_nested_zones_overlap():
    for inner in (SQUARE_L, [[40, 40], [60, 40], [60, 60], [40, 60]]):
        with pytest.raises(ZoneError, match="overlap"):
            Zones.from_mapping({"zones": {"a": SQUARE_L, "b": inner}, "chambers": ["a", "b"]})


def test_zones_outside_a_session_frame_and_unknown_chambers():
    z = Zones.from_mapping({"zones": {"left": SQUARE_L, "right": SQUARE_R}})
    with pytest.raises(ZoneError, match=r"inside the video \(100x100 px\)"):
        z.check_frame(100, 100, what="the video")
    with pytest.raises(ZoneError, match="chambers to be two different zones"):
        Zones.from_mapping({"zones": {"left": SQUARE_L, "right": SQUARE_R}, "chambers": ["left", "left"]})


# ------------------------------------------------------------------------------------------ occupancy


@pytest.mark.parametrize(("paired", "start"), [("right", "unpaired"), ("left", "paired")])
def test_times_entries_latency_exact_from_poses(paired, start):
    clip = simulate_clip(
        "place_preference", seed=5, time_in_paired_s=37.4, n_entries=4, duration_s=60.0,
        paired_chamber=paired, start_chamber=start,
    )  # fmt: skip
    t = clip.truth
    m = measures_of(score_clip(clip, paired=paired))
    assert m["time_in_paired_s"] == pytest.approx(t["time_in_paired_s"], abs=1e-9)
    assert m["time_in_unpaired_s"] == pytest.approx(t["time_in_unpaired_s"], abs=1e-9)
    assert m["time_in_paired_fraction"] == pytest.approx(t["paired_fraction"], abs=1e-12)
    assert m["entries_paired"] == t["n_entries"] == 4
    assert m["entries_unpaired"] == t["n_entries_unpaired"]
    assert m["latency_to_paired_s"] == pytest.approx(t["latency_to_first_entry_s"], abs=1e-9)
    assert "time_in_left_s" not in m  # the compared chambers are paired / unpaired
    assert m["distance_moved_mm"] > 0


def test_boundary_flicker_does_not_inflate_entries():
    clip = simulate_clip(
        "place_preference", seed=9, time_in_paired_s=30.0, n_entries=5, duration_s=60.0, boundary_flicker_frames=4
    )
    t = clip.truth
    assert t["n_entries_raw"] > t["n_entries"] == 5  # the raw frame rule counts every flicker
    result = score_clip(clip, paired="right")
    m = measures_of(result)
    assert m["entries_paired"] == 5
    assert abs(m["time_in_paired_s"] - t["time_in_paired_s"]) <= 1.0
    assert result.quality["flicker_runs_absorbed"] > 0
    # without the minimum dwell the flicker would count
    raw = measures_of(score_clip(clip, cfg=config(min_dwell_s=0), paired="right"))
    assert raw["entries_paired"] == t["n_entries_raw"]


def test_debounce_and_gap_rules():
    U, P = 0, 1
    seq = np.array([U] * 5 + [P, U, P, U] + [P] * 6 + [U] * 4)
    out, absorbed = debounce(seq, 3)
    assert out.tolist() == [U] * 9 + [P] * 6 + [U] * 4 and absorbed == 2
    start = np.array([P, U, U, U, U])  # a short first run goes to the first run that lasts
    assert debounce(start, 3)[0].tolist() == [U] * 5
    gap = np.array([P, P, UNTRACKED, UNTRACKED, P, U, UNTRACKED, P])
    filled, n = fill_gaps(gap, 2)
    assert filled.tolist() == [P, P, P, P, P, U, UNTRACKED, P] and n == 2  # a gap across a change stays untracked
    assert fill_gaps(gap, 1)[1] == 0


def _track(xy, fps=5.0, cfg=None, zones=None):
    cfg = cfg or config()
    zones = zones or load_zones("synthetic_two_chamber")
    return score_track(np.asarray(xy, float), np.arange(len(xy)), 1 / fps, zones, "right", "left", cfg)


def test_lost_tracking_gives_nan_with_reason_and_short_gaps_are_bridged():
    xy = np.tile([[100.0, 80.0]], (100, 1))
    xy[50:] = [200.0, 80.0]
    xy[60:63] = np.nan  # 0.6 s inside the right chamber: bridged
    r = _track(xy)
    m = measures_of(r)
    assert m["time_in_paired_s"] == pytest.approx(10.0) and r.quality["samples_gap_filled"] == 3
    assert {q.quality for q in r.measures} == {"ok"}
    xy[10:40] = np.nan  # 30 % of the test without a body centre
    lost = _track(xy)
    assert all(math.isnan(q.value) for q in lost.measures)
    assert {q.quality for q in lost.measures} == {"tracking_lost"}
    assert lost.quality["untracked_fraction"] == pytest.approx(0.3)
    xy[10:40] = [100.0, 80.0]
    xy[20:28] = np.nan  # 1.6 s gap: longer than max_gap_s, left untracked, measures flagged
    gaps = _track(xy)
    assert {q.quality for q in gaps.measures} == {"untracked_gaps"}
    assert measures_of(gaps)["time_in_unpaired_s"] == pytest.approx(10.0 - 1.6)


def test_recording_cut_short_and_single_frame():
    xy = np.tile([[100.0, 80.0]], (100, 1))  # 20 s
    r = _track(xy, cfg=config(expected_duration_s=60))
    m = measures_of(r)
    assert math.isnan(m["time_in_paired_s"]) and m["time_in_unpaired_fraction"] == 1.0
    assert {q.quality for q in r.measures} == {"cut_short"}
    with pytest.raises(ValueError, match="at least 2 frames, got 1"):
        _track(xy[:1])


def test_never_entering_the_paired_chamber_is_censored_and_outside_time_counted():
    xy = np.tile([[100.0, 80.0]], (50, 1))
    xy[40:] = [2.0, 2.0]  # outside every zone
    r = _track(xy)
    m = {q.measure: q for q in r.measures}
    assert m["latency_to_paired_s"].quality == "censored" and m["latency_to_paired_s"].value == pytest.approx(10.0)
    assert m["time_outside_zones_s"].value == pytest.approx(2.0)
    assert r.tables["place_preference_frames"]["zone"].iloc[-1] == "outside"
    assert OUTSIDE != UNTRACKED


def test_body_centre_needs_its_keypoints_and_one_animal():
    clip = simulate_clip("place_preference", seed=3, duration_s=10.0, n_entries=1)
    with pytest.raises(ValueError, match=r"body keypoints \['nose'\]"):
        body_track(clip.poses, clip.session, config(body_keypoints="[nose]"))
    low = clip.poses.copy(deep=True)
    low["confidence"][:] = 0.1  # every point below min_confidence: no body centre anywhere
    track = body_track(low, clip.session, config())
    assert np.isnan(track.xy_px).all()


def test_paired_chamber_rules(tmp_path):
    zones = load_zones("synthetic_two_chamber")
    s = Session(session_id="s1", animal_id="A1", group="CCI", timepoint="d7", assay="place_preference", fps=5,
                side="left", pose="x.h5")  # fmt: skip
    assert paired_chamber_for(s, config(), zones) == ("right", "left")  # opposite the lesion (the rig's design)
    csv = tmp_path / "paired.csv"
    csv.write_text("group,animal_id,paired_chamber\nCCI,A1,left\nControl,A1,right\n")
    assert paired_chamber_for(s, config(paired_chambers_csv=str(csv)), zones)[0] == "left"
    with pytest.raises(ZoneError, match="expected one of the chambers"):
        paired_chamber_for(s, config(paired_chamber_by_side="null", paired_chamber="middle"), zones)
    with pytest.raises(ZoneError, match="expected a paired chamber"):
        paired_chamber_for(s.model_copy(update={"side": None}), config(), zones)


# ------------------------------------------------------------------------------------------ pairing


def _rows(sessions: list[tuple[str, str, str, str, float, float]]) -> pd.DataFrame:
    rows = []
    for sid, animal, group, tp, seconds, frac in sessions:
        for measure, value in (("time_in_paired_s", seconds), ("time_in_paired_fraction", frac)):
            rows.append({"session_id": sid, "animal_id": animal, "group": group, "timepoint": tp,
                         "assay": "place_preference", "domain": "affective", "measure": measure, "value": value,
                         "unit": "s", "n": 300, "quality": "ok"})  # fmt: skip
    return pd.DataFrame(rows, columns=list(MEASURES_COLUMNS))


def test_preference_score_pairs_within_group_and_animal():
    m = _rows(
        [
            ("c_pre", "A01", "Control", "baseline", 30.0, 0.5),
            ("c_t", "A01", "Control", "d7", 31.2, 0.52),
            ("i_pre", "A01", "CCI", "Baseline", 24.0, 0.4),  # the same id in another group: another animal
            ("i_t", "A01", "CCI", "d7", 42.6, 0.71),
        ]
    )
    quality = pd.DataFrame({"session_id": ["c_pre", "c_t", "i_pre", "i_t"], "duration_s": [60.0] * 4})
    out, notes = study_measures(m, quality)
    score = out[out["measure"] == "preference_score_s"].set_index("session_id")["value"]
    assert score.to_dict() == {"c_t": pytest.approx(1.2, abs=1e-9), "i_t": pytest.approx(18.6, abs=1e-9)}
    pct = out[out["measure"] == "preference_score_percent"].set_index("session_id")["value"]
    assert pct["i_t"] == pytest.approx(31.0, abs=1e-9)
    assert notes == [] and set(out.loc[out["measure"] == "preference_score_s", "domain"]) == {"affective"}
    assert out.loc[out["session_id"] == "i_t", "group"].unique().tolist() == ["CCI"]


def test_missing_or_double_pretest_and_differing_durations_give_nan_with_reasons():
    m = _rows(
        [
            ("a_t", "A01", "CCI", "d7", 40.0, 0.66),  # no pre-test
            ("b_pre1", "B01", "CCI", "baseline", 30.0, 0.5),
            ("b_pre2", "B01", "CCI", "baseline", 31.0, 0.5),
            ("b_t", "B01", "CCI", "d7", 40.0, 0.66),
            ("c_pre", "C01", "CCI", "baseline", 30.0, 0.5),
            ("c_t", "C01", "CCI", "d7", 20.0, 0.66),
        ]
    )
    quality = pd.DataFrame({"session_id": ["c_pre", "c_t"], "duration_s": [60.0, 30.0]})
    rows = preference_rows(m, quality, pretest_timepoint="baseline").set_index(["session_id", "measure"])
    assert rows.loc[("a_t", "preference_score_s"), "quality"] == "no_pretest"
    assert (
        "expected a pre-test session of the same animal at timepoint 'baseline'"
        in rows.loc[("a_t", "preference_score_s"), "note"]
    )
    assert rows.loc[("b_t", "preference_score_s"), "quality"] == "several_pretests"
    assert "b_pre1, b_pre2" in rows.loc[("b_t", "preference_score_s"), "note"]
    assert rows.loc[("c_t", "preference_score_s"), "quality"] == "durations_differ"
    assert math.isnan(rows.loc[("c_t", "preference_score_s"), "value"])
    assert rows.loc[("c_t", "preference_score_percent"), "value"] == pytest.approx(16.0)
    for key in [("a_t", "preference_score_s"), ("b_t", "preference_score_percent")]:
        assert math.isnan(rows.loc[key, "value"]) and "\n" not in rows.loc[key, "note"]
    _, notes = study_measures(m, quality)
    assert len(notes) == 5 and all("\n" not in n for n in notes)


def test_unscored_pretest_propagates_nan():
    m = _rows([("p", "A", "G", "baseline", math.nan, math.nan), ("t", "A", "G", "d7", 40.0, 0.66)])
    rows = preference_rows(m, None, pretest_timepoint="baseline")
    assert rows["value"].isna().all() and set(rows["quality"]) == {"unscored_session"}


def test_pairs_with_different_paired_chambers_are_not_scored():
    m = _rows([("p", "A", "G", "baseline", 30.0, 0.5), ("t", "A", "G", "d7", 40.0, 0.66)])
    quality = pd.DataFrame({"session_id": ["p", "t"], "duration_s": [60.0, 60.0], "paired_chamber": ["left", "right"]})
    rows = preference_rows(m, quality, pretest_timepoint="baseline")
    assert rows["value"].isna().all() and set(rows["quality"]) == {"paired_chamber_differs"}
    assert all("paired chamber differs" in n for n in rows["note"])
