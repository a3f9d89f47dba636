"""Withdrawal latency on synthetic-rig clips: within 2 frames of truth, censoring, no false withdrawals."""

from __future__ import annotations

import numpy as np
import pytest

from behavior.features.withdrawal import WithdrawalParams, detect_withdrawal, withdrawal_trials
from behavior.synthetic import simulate_clip, write_clip
from behavior.video import ROI, detect_light_switches

PAWS = {"left": "left_hind", "right": "right_hind"}


def noisy(ds, *, jitter_px: float, dropout: float, seed: int):
    """The ground-truth poses with tracking jitter and random low-confidence frames, as a model gives."""
    rng = np.random.default_rng(seed)
    out = ds.copy(deep=True)
    out["position"].values[:] += rng.normal(0, jitter_px, out["position"].shape)
    conf = rng.uniform(0.7, 1.0, out["confidence"].shape)
    conf[rng.random(conf.shape) < dropout] = 0.05
    out["confidence"].values[:] = conf
    return out


@pytest.mark.parametrize("latency_s", [0.4, 1.3, 3.0, 7.7, 12.0, 19.0])
def test_latency_within_two_frames_of_truth(latency_s):
    clip = simulate_clip("hargreaves", seed=int(latency_s * 10), latencies_s=[latency_s], fps=15)
    poses = noisy(clip.poses, jitter_px=0.6, dropout=0.05, seed=1)
    trials = withdrawal_trials(
        poses, clip.session.events, window_s=20.0, paw_by_side=PAWS, px_per_mm=clip.session.px_per_mm
    )
    truth = clip.truth["trials"][0]
    assert len(trials) == 1
    row = trials.iloc[0]
    assert row["responded"] and not row["censored"]
    assert abs(row["latency_s"] - truth["latency_s"]) <= 2 / 15 + 1e-9


def test_several_trials_both_paws_and_censoring():
    clip = simulate_clip(
        "hargreaves", seed=3, latencies_s=[2.0, None, 5.0], trial_sides=["left", "right", "right"], cutoff_s=10.0
    )
    trials = withdrawal_trials(
        noisy(clip.poses, jitter_px=0.5, dropout=0.03, seed=2),
        clip.session.events,
        window_s=10.0,
        paw_by_side=PAWS,
        px_per_mm=clip.session.px_per_mm,
    )
    assert trials["paw"].tolist() == ["left_hind", "right_hind", "right_hind"]
    assert trials["censored"].tolist() == [False, True, False]
    assert trials["latency_s"][1] == 10.0  # censored at the cut-off
    for row, truth in zip(trials.itertuples(), clip.truth["trials"], strict=True):
        if not truth["censored"]:
            assert abs(row.latency_s - truth["latency_s"]) <= 2 / clip.session.fps + 1e-9


@pytest.mark.parametrize("seed", range(5))
def test_no_false_withdrawal_when_the_paw_never_moves(seed):
    clip = simulate_clip("hargreaves", seed=seed, latencies_s=[None, None], trial_sides=["left", "right"], cutoff_s=8)
    poses = noisy(clip.poses, jitter_px=1.0, dropout=0.15, seed=seed)
    trials = withdrawal_trials(poses, clip.session.events, window_s=8.0, paw_by_side=PAWS)
    assert not trials["responded"].any()
    assert trials["censored"].all()


def test_onsets_detected_from_the_heat_source_light_in_the_video(tmp_path):
    latencies = [1.0, 4.0]
    clip = simulate_clip("hargreaves", seed=7, latencies_s=latencies, trial_sides=["right", "left"])
    paths = write_clip(clip, tmp_path)
    onsets = []
    for truth in clip.truth["trials"]:
        events = detect_light_switches(paths["video"], ROI(*truth["roi"]))
        onsets += [e for e in events if e["kind"] == "light_on" and abs(e["frame"] - truth["onset_frame"]) <= 1]
    assert len(onsets) == 2
    events = [
        {"time_s": e["time_s"], "kind": "stimulus_on", "side": t["side"]}
        for e, t in zip(onsets, clip.truth["trials"], strict=True)
    ]
    trials = withdrawal_trials(clip.poses, events, window_s=20.0, paw_by_side=PAWS)
    for row, truth in zip(trials.itertuples(), clip.truth["trials"], strict=True):
        assert abs(row.latency_s - truth["latency_s"]) <= 2 / clip.session.fps + 1e-9


def test_von_frey_responses_from_video_match_the_planted_pattern():
    clip = simulate_clip(
        "von_frey", seed=2, filaments_g=[2.0, 4.0, 2.0, 4.0, 6.0, 4.0], responses=list("OXOOXX"), response_latency_s=0.3
    )
    trials = withdrawal_trials(
        noisy(clip.poses, jitter_px=0.5, dropout=0.05, seed=4), clip.session.events, window_s=1.5, paw_by_side=PAWS
    )
    assert "".join("X" if r else "O" for r in trials["responded"]) == "OXOOXX"
    assert trials["intensity"].tolist() == [2.0, 4.0, 2.0, 4.0, 6.0, 4.0]


def test_untracked_paw_before_the_stimulus_is_reported_not_scored():
    track = np.full((100, 2), np.nan)
    track[60:] = 50.0
    trial = detect_withdrawal(track, 30.0, 40, window_s=1.0)
    assert trial.quality == "no_baseline" and not trial.responded and np.isnan(trial.latency_s)


def test_recording_that_ends_before_the_window_is_flagged_not_scored():
    track = np.full((50, 2), 20.0)
    trial = detect_withdrawal(track, 10.0, 30, window_s=20.0)
    assert trial.quality == "recording_ended"
    assert not trial.censored and not trial.responded and np.isnan(trial.latency_s)


def test_trial_cut_short_by_the_end_of_the_video_has_no_latency():
    # issue 11, defect 1: stimulus 3 s before the video ends, cut-off 20 s, no withdrawal; today it
    # read latency_s=3.0, censored=True (a 3 s "latency" that looks like hyperalgesia)
    fps, onset = 30.0, 100
    track = np.full((onset + 90, 2), 100.0) + np.random.default_rng(0).normal(0, 0.3, (onset + 90, 2))
    trial = detect_withdrawal(track, fps, onset, window_s=20.0)
    assert trial.quality == "recording_ended"
    assert np.isnan(trial.latency_s) and not trial.censored and not trial.responded
    # a withdrawal seen before the video ends is still a real latency
    track[onset + 30 :] += 40.0
    seen = detect_withdrawal(track, fps, onset, window_s=20.0)
    assert seen.responded and seen.quality == "ok" and seen.latency_s == pytest.approx(1.0)


def test_paw_lost_from_tracking_is_untracked_not_a_non_response():
    # issue 11, defect 2: one displaced frame, then NaN for the rest of the window (a blurred
    # withdrawal); today it read latency_s=20, censored=True, quality='ok' (biased towards analgesia)
    fps, onset = 30.0, 100
    track = np.full((800, 2), 100.0) + np.random.default_rng(1).normal(0, 0.3, (800, 2))
    track[onset + 1] += 40.0
    track[onset + 2 :] = np.nan
    trial = detect_withdrawal(track, fps, onset, window_s=20.0)
    assert trial.quality == "untracked"
    assert np.isnan(trial.latency_s) and not trial.censored and not trial.responded
    assert trial.untracked_fraction == pytest.approx(598 / 599)


def test_short_untracked_stretch_below_the_limit_is_scored_and_reported():
    fps, onset = 30.0, 100
    track = np.full((800, 2), 100.0) + np.random.default_rng(2).normal(0, 0.3, (800, 2))
    track[onset + 1 : onset + 61] = np.nan  # 60 of 599 frames (10 %) lost
    params = WithdrawalParams(max_untracked_fraction=0.2)
    trial = detect_withdrawal(track, fps, onset, window_s=20.0, params=params)
    assert trial.quality == "ok" and trial.censored and trial.latency_s == 20.0
    assert trial.untracked_fraction == pytest.approx(60 / 599)
    strict = detect_withdrawal(track, fps, onset, window_s=20.0, params=WithdrawalParams(max_untracked_fraction=0.05))
    assert strict.quality == "untracked" and np.isnan(strict.latency_s)


@pytest.mark.parametrize("n_frames", [700, 800])
def test_one_frame_glitch_on_the_last_frame_of_the_window_is_not_a_withdrawal(n_frames):
    # issue 11, defect 3: today a glitch on the window's last frame read as a withdrawal at 19.97 s,
    # defeating min_frames; the track either ends with the window (700) or goes on at rest (800)
    fps, onset = 30.0, 100
    track = np.full((n_frames, 2), 100.0) + np.random.default_rng(3).normal(0, 0.3, (n_frames, 2))
    track[onset + 599] += 40.0  # the last frame of the 20 s window (latency 19.97 s)
    trial = detect_withdrawal(track, fps, onset, window_s=20.0, params=WithdrawalParams(min_frames=2))
    assert not trial.responded and trial.censored and trial.latency_s == 20.0 and trial.quality == "ok"


def test_withdrawal_starting_on_the_last_frame_is_confirmed_after_the_window():
    fps, onset = 30.0, 100
    track = np.full((800, 2), 100.0) + np.random.default_rng(4).normal(0, 0.3, (800, 2))
    track[onset + 599 :] += 40.0  # the paw leaves on the last frame of the window and stays away
    trial = detect_withdrawal(track, fps, onset, window_s=20.0, params=WithdrawalParams(min_frames=2))
    assert trial.responded and trial.latency_s == pytest.approx(599 / 30)


def test_single_frame_glitch_is_not_a_withdrawal():
    track = np.full((200, 2), 100.0) + np.random.default_rng(0).normal(0, 0.3, (200, 2))
    track[120] += 40.0  # one mistracked frame
    trial = detect_withdrawal(track, 30.0, 100, window_s=3.0, params=WithdrawalParams(min_frames=2))
    assert not trial.responded


def test_errors_name_the_problem():
    clip = simulate_clip("hargreaves", seed=1, latencies_s=[2.0])
    with pytest.raises(ValueError, match="expected a paw keypoint"):
        withdrawal_trials(clip.poses, clip.session.events, window_s=20.0)
    with pytest.raises(KeyError, match="got 'nose'"):
        withdrawal_trials(clip.poses, clip.session.events, window_s=20.0, paw="nose")
    with pytest.raises(ValueError, match="kinds \\['light_on'\\]"):
        withdrawal_trials(clip.poses, [{"time_s": 1.0, "kind": "light_on"}], window_s=20.0, paw="left_hind")
    late = [{"time_s": 999.0, "kind": "stimulus_on", "side": "left"}]
    with pytest.raises(ValueError, match="outside the tracked frames"):
        withdrawal_trials(clip.poses, late, window_s=20.0, paw_by_side=PAWS)


# --- a stimulus that moves the keypoint, not the paw (the heat lamp's glow under the paw) -----------------
FPS, ONSET, PX_PER_MM = 30.0, 150, 3.0  # the floor is 1 mm = 3 px


def glow_track(*, shift_px: float, withdrawal_frame: int | None, n_frames: int = 900, seed: int = 0) -> np.ndarray:
    """A resting paw whose keypoint steps ``shift_px`` on the frame after the onset and stays there while
    the lamp is on; at ``withdrawal_frame`` the lamp goes off and the paw lifts 7 mm (exponential approach,
    as the rig's paws do), held, then put back."""
    rng = np.random.default_rng(seed)
    track = np.full((n_frames, 2), 100.0) + rng.normal(0, 0.25, (n_frames, 2))
    lamp_off = withdrawal_frame if withdrawal_frame is not None else n_frames
    track[ONSET + 1 : lamp_off, 0] += shift_px
    if withdrawal_frame is not None:
        j = np.arange(n_frames - withdrawal_frame)
        lift = np.where(j < 24, 1.0 - np.exp(-(j + 1) / 1.2), 0.0)  # held 0.8 s, then back
        track[withdrawal_frame:, 1] -= 7.0 * PX_PER_MM * lift
    return track


def hargreaves_params(**changes) -> WithdrawalParams:
    from behavior.features.evoked import assay_config

    return assay_config("hargreaves").withdrawal.model_copy(update=changes)


def test_a_keypoint_shift_at_the_lamp_onset_is_not_a_withdrawal():
    # found in the demo: a paw model trained with frozen layers placed the paw 2-3 px off under the glow and
    # 27 of 72 trials read a withdrawal one frame after the onset (0.07 s for a true 10.4 s), flagged ok
    truth_frame = ONSET + round(10.4 * FPS)
    track = glow_track(shift_px=4.0, withdrawal_frame=truth_frame)
    params = hargreaves_params(min_confidence=0.5)
    assert params.onset_shift_s > 0  # the shipped Hargreaves config has the rule on
    old = detect_withdrawal(track, FPS, ONSET, window_s=20.0, params=params.model_copy(update={"onset_shift_s": 0}))
    assert old.responded and old.latency_s < 0.1  # the defect, as it was
    trial = detect_withdrawal(track, FPS, ONSET, window_s=20.0, params=params, px_per_mm=PX_PER_MM)
    assert trial.quality == "ok" and trial.responded
    assert trial.latency_s == pytest.approx(10.4, abs=1 / FPS + 1e-9)
    assert trial.onset_shift_px == pytest.approx(4.0, abs=0.3)


def test_a_shift_under_the_threshold_that_drifts_over_it_is_not_a_withdrawal():
    # also found in the demo (unfrozen paw model): the point sat 2 px off before the onset, came back at the
    # onset, then crept; against the rest before the onset it crossed the 3 px floor at 2.47 s (true 4.13 s)
    truth_frame = ONSET + round(8.0 * FPS)
    track = glow_track(shift_px=2.5, withdrawal_frame=truth_frame)
    track[ONSET + 1 : truth_frame, 0] += np.linspace(0, 1.5, truth_frame - ONSET - 1)  # 1.5 px over 8 s
    params = hargreaves_params()
    old = detect_withdrawal(
        track, FPS, ONSET, window_s=20.0, params=params.model_copy(update={"onset_shift_s": 0}), px_per_mm=PX_PER_MM
    )
    assert old.responded and old.latency_s < 6.0  # read early, as it was
    trial = detect_withdrawal(track, FPS, ONSET, window_s=20.0, params=params, px_per_mm=PX_PER_MM)
    assert trial.quality == "ok" and trial.latency_s == pytest.approx(8.0, abs=1 / FPS + 1e-9)
    assert trial.onset_shift_px == pytest.approx(2.5, abs=0.4)


def test_a_shift_at_the_onset_with_no_withdrawal_is_censored_at_the_cut_off():
    track = glow_track(shift_px=5.0, withdrawal_frame=None)
    trial = detect_withdrawal(track, FPS, ONSET, window_s=20.0, params=hargreaves_params(), px_per_mm=PX_PER_MM)
    assert trial.censored and trial.quality == "ok" and trial.latency_s == 20.0
    assert trial.onset_shift_px == pytest.approx(5.0, abs=0.3)


@pytest.mark.parametrize("latency_frames", [1, 3, 8])
def test_a_quick_withdrawal_that_moves_on_is_still_a_withdrawal(latency_frames):
    track = glow_track(shift_px=0.0, withdrawal_frame=ONSET + latency_frames)
    trial = detect_withdrawal(track, FPS, ONSET, window_s=20.0, params=hargreaves_params(), px_per_mm=PX_PER_MM)
    assert trial.responded and trial.onset_shift_px == 0.0
    assert trial.latency_s == pytest.approx(latency_frames / FPS, abs=1 / FPS + 1e-9)


def test_a_step_held_still_and_put_back_has_no_outcome():
    # a jump to 4 mm on the first frame, held 2 s, back to the old rest: a shift that went away, or a quick
    # lift held still? Neither reading is safe, so the trial is not scored, and says why
    track = np.full((900, 2), 100.0) + np.random.default_rng(3).normal(0, 0.25, (900, 2))
    track[ONSET + 1 : ONSET + 61, 1] -= 4 * PX_PER_MM
    trial = detect_withdrawal(track, FPS, ONSET, window_s=20.0, params=hargreaves_params(), px_per_mm=PX_PER_MM)
    assert trial.quality == "onset_shift" and np.isnan(trial.latency_s)
    assert not trial.responded and not trial.censored


def test_shifted_trials_are_counted_with_their_measure():
    from behavior.assays import get_assay
    from behavior.features.evoked import assay_config

    clip = simulate_clip("hargreaves", seed=7, latencies_s=[6.0, 9.0], trial_sides=["left", "right"])
    poses = clip.poses.copy(deep=True)
    onset = round(clip.session.events[0].time_s * clip.session.fps)
    x = poses["position"].sel(keypoints="left_hind").values
    dims = poses["position"].sel(keypoints="left_hind").dims
    axis_time, axis_space = dims.index("time"), dims.index("space")
    sl = [slice(None)] * x.ndim
    truth = clip.truth["trials"][0]
    sl[axis_time], sl[axis_space] = slice(onset + 1, truth["withdrawal_frame"]), 0
    x[tuple(sl)] += 1.5 * clip.session.px_per_mm  # a 1.5 mm shift while the lamp is on
    poses["position"].loc[{"keypoints": "left_hind"}] = x
    result = get_assay("hargreaves").extract(poses, clip.session, assay_config("hargreaves"))
    trials = result.tables["trials"]
    left = trials[trials["side"] == "left"].iloc[0]
    assert left["onset_shift_px"] == pytest.approx(1.5 * clip.session.px_per_mm, abs=0.3)
    assert abs(left["latency_s"] - truth["latency_s"]) <= 2 / clip.session.fps + 1e-9
    counts = {c["measure"]: c for c in result.quality["trial_counts"]}
    assert clip.session.side == "left"  # the simulated injured side: left is ipsi
    assert counts["latency_ipsi_s"]["onset_shifted"] == 1 and counts["latency_contra_s"]["onset_shifted"] == 0
