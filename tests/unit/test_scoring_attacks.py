"""Inputs that gave a wrong score with no error and no flag (review of the issue 11 fixes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from behavior.battery import BatteryConfig
from behavior.features.withdrawal import detect_withdrawal, withdrawal_trials
from behavior.stats import TimepointError, analyse_measures, auc_per_animal, timepoint_days, timepoint_order
from pose_models.poses import from_numpy

FPS, ONSET = 30.0, 100
PAWS = {"left": "left_hind", "right": "right_hind"}


def resting(n_frames: int = 800, seed: int = 0) -> np.ndarray:
    """A paw at rest with 0.3 px tracking jitter."""
    return np.full((n_frames, 2), 100.0) + np.random.default_rng(seed).normal(0, 0.3, (n_frames, 2))


def two_paw_poses(n_frames: int, moves: list[tuple[int, int, int]]) -> object:
    """Poses of two resting hind paws; each ``(keypoint index, first, last)`` moves a paw 40 px away."""
    pos = np.full((n_frames, 2, 2, 1), 100.0) + np.random.default_rng(0).normal(0, 0.3, (n_frames, 2, 2, 1))
    for kp, first, last in moves:
        pos[first:last, 0, kp, 0] += 40.0
    return from_numpy(pos, keypoint_names=["left_hind", "right_hind"], fps=FPS)


# ------------------------------------------------------------------------ tracking lost at a withdrawal


def test_paw_lost_just_before_it_is_seen_withdrawn_has_no_latency():
    # lost 9.0-10.5 s (14 % of the window, under the 20 % limit), seen withdrawn from 10.5 s: the
    # withdrawal began somewhere in the gap; it read latency 10.5 s, quality ok
    track = resting()
    track[ONSET + 270 : ONSET + 315] = np.nan
    track[ONSET + 315 :] += 40.0
    trial = detect_withdrawal(track, FPS, ONSET, window_s=20.0)
    assert trial.quality == "untracked" and np.isnan(trial.latency_s) and not trial.responded


def test_paw_seen_displaced_then_lost_is_not_a_non_response():
    # displaced at 5 s for one frame, then lost for 3 s (15 %), back at rest: it read a 20 s censored
    # non-response with quality ok
    track = resting()
    track[ONSET + 150] += 40.0
    track[ONSET + 151 : ONSET + 240] = np.nan
    trial = detect_withdrawal(track, FPS, ONSET, window_s=20.0)
    assert trial.quality == "untracked" and np.isnan(trial.latency_s) and not trial.censored


def test_paw_lost_until_the_cut_off_is_not_a_non_response():
    # the paw leaves tracking at 17 s and is not seen again before the cut-off: it read a 20 s
    # non-response (quality ok), though a withdrawal may have taken it out of view
    track = resting()
    track[ONSET + 510 :] = np.nan
    trial = detect_withdrawal(track, FPS, ONSET, window_s=20.0)
    assert trial.quality == "untracked" and np.isnan(trial.latency_s) and not trial.censored


def test_gap_with_the_paw_at_rest_on_both_sides_is_still_scored():
    track = resting()
    track[ONSET + 200 : ONSET + 260] = np.nan
    trial = detect_withdrawal(track, FPS, ONSET, window_s=20.0)
    assert trial.quality == "ok" and trial.censored and trial.latency_s == 20.0


# ------------------------------------------------------------------------------- overlapping stimuli


def test_next_heat_onset_on_the_same_paw_ends_the_trial_unscored():
    # left paw heated at 10 s and again at 15 s, withdrawal at 17 s (2 s after the second onset): the
    # first trial read a 7 s latency, crediting the second stimulus' withdrawal to it
    poses = two_paw_poses(2000, [(0, 510, 540)])
    events = [
        {"time_s": 10.0, "kind": "stimulus_on", "side": "left"},
        {"time_s": 15.0, "kind": "stimulus_on", "side": "left"},
    ]
    trials = withdrawal_trials(poses, events, window_s=20.0, paw_by_side=PAWS)
    assert trials["quality"].tolist() == ["interrupted", "ok"]
    assert np.isnan(trials["latency_s"][0]) and not trials["censored"][0] and not trials["responded"][0]
    assert trials["latency_s"][1] == pytest.approx(2.0)


def test_other_paw_onset_does_not_end_a_trial():
    poses = two_paw_poses(2000, [(0, 510, 540)])
    events = [
        {"time_s": 10.0, "kind": "stimulus_on", "side": "left"},
        {"time_s": 15.0, "kind": "stimulus_on", "side": "right"},
    ]
    trials = withdrawal_trials(poses, events, window_s=20.0, paw_by_side=PAWS)
    assert trials["quality"].tolist() == ["ok", "ok"] and trials["latency_s"][0] == pytest.approx(7.0)


@pytest.mark.parametrize("off_side", [None, "left"])
def test_von_frey_withdrawal_to_the_next_filament_is_not_credited_to_this_one(off_side):
    # filament 1 on 2-4 s, filament 2 on 6-8 s, withdrawal at 6.5 s. With side-less off events (or
    # filament 1's off missing) filament 1 kept the full 6 s window and read X (latency 4.5 s): OX -> XX
    poses = two_paw_poses(2000, [(0, 195, 210)])
    events = [
        {"time_s": 2.0, "kind": "stimulus_on", "side": "left", "intensity": 2.0},
        {"time_s": 6.0, "kind": "stimulus_on", "side": "left", "intensity": 4.0},
        {"time_s": 8.0, "kind": "stimulus_off", "side": off_side},
    ]
    if off_side is None:
        events.append({"time_s": 4.0, "kind": "stimulus_off", "side": None})
    trials = withdrawal_trials(poses, events, window_s=6.0, paw_by_side=PAWS, off_grace_s=0.5)
    assert trials["responded"].tolist() == [False, True]
    assert trials["quality"].tolist() == ["ok", "ok"]
    assert trials["latency_s"][1] == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------ timepoints


@pytest.mark.parametrize(("label", "days"), [("-7d", -7.0), ("day -1", -1.0), ("day_-1", -1.0), ("-1 wk", -7.0)])
def test_negative_timepoints_are_before_baseline(label, days):
    # the separator swallowed the sign: "day -1" read as +1 day
    assert timepoint_days(label) == days


@pytest.mark.parametrize("label", ["d-7", "Day-3", "wk-1"])
def test_a_unit_hyphenated_to_a_number_is_refused_as_ambiguous(label):
    # "Day-3" is day 3 to some labs and 3 days before baseline to others: neither guess is safe
    with pytest.raises(TimepointError, match="ambiguous"):
        timepoint_days(label)


def test_a_measure_with_no_values_keeps_a_row_saying_so():
    df = pd.DataFrame(
        {
            "animal_id": ["a", "b"],
            "group": ["g", "h"],
            "timepoint": ["baseline", "baseline"],
            "measure": ["latency_ipsi_s"] * 2,
            "value": [np.nan, np.nan],
        }
    )
    out = analyse_measures(df)
    assert out["measure"].tolist() == ["latency_ipsi_s"] and "no values" in out["note"].iloc[0]


def test_pre_baseline_timepoint_sorts_first_and_is_left_out_of_the_auc():
    # change-from-baseline AUC runs from baseline on; a pre-baseline reading added a d-1..0 segment
    rows = [("-1d", 30.0), ("baseline", 10.0), ("d7", 12.0)]
    df = pd.DataFrame(
        {"animal_id": "a", "group": "g", "timepoint": [t for t, _ in rows], "value": [v for _, v in rows]}
    )
    assert timepoint_order(df["timepoint"]) == ["-1d", "baseline", "d7"]
    assert auc_per_animal(df, "baseline")["auc"].iloc[0] == pytest.approx(0.5 * 2.0 * 7)


# ------------------------------------------------------------------------------------------- control


def test_control_group_is_found_in_any_case_like_the_baseline():
    # data say 'control', the config 'Control': the report lost its stars and the heatmap reference
    config = BatteryConfig.load("default")
    assert config.control_in(["CCI", "control"]) == "control"
    assert config.control_in(["CCI", "Control", "control"]) == "Control"
    assert config.control_in(["G1", "G2"], {"G1": "control", "G2": "CCI"}) == "G1"


def test_duplicated_onset_on_one_paw_is_refused_clearly():
    # two identical onset rows: the first read as a 0 s window (a von Frey 'O'); refuse it instead
    poses = two_paw_poses(600, [])
    events = [{"time_s": 2.0, "kind": "stimulus_on", "side": "left"}] * 2
    with pytest.raises(ValueError, match="expected one onset at a time on paw left_hind, got two"):
        withdrawal_trials(poses, events, window_s=6.0, paw_by_side=PAWS)
