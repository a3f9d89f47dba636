"""Video access on videos written here: probing, batches, crops, light detection, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from behavior.video import (
    ROI,
    VideoError,
    VideoReader,
    crop,
    detect_light_switches,
    light_switches,
    probe_video,
    roi_brightness,
    write_video,
)

LIGHT = ROI(x=100, y=20, width=16, height=12)


def light_clip(n_frames: int, on_frames: list[tuple[int, int]], *, seed: int = 0) -> np.ndarray:
    """Gray-ish noisy frames with a bright spot in ``LIGHT`` during each (on, off) interval."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(30, 60, size=(n_frames, 120, 160, 3)).astype(np.uint8)
    for on, off in on_frames:
        frames[on:off, LIGHT.y : LIGHT.y + LIGHT.height, LIGHT.x : LIGHT.x + LIGHT.width] = 230
    # a frame counter bar so each frame differs visibly (and decoding order can be checked)
    for i in range(n_frames):
        frames[i, 110:120, : i % 160] = 255
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    frames = light_clip(90, [(20, 35), (61, 90)])
    write_video(path, frames, fps=30)
    return path, frames


def test_probe_reports_what_was_written(clip):
    path, _ = clip
    info = probe_video(path)
    assert (info.n_frames, info.width, info.height) == (90, 160, 120)
    assert info.fps == pytest.approx(30.0)
    assert info.duration_s == pytest.approx(3.0)
    assert info.codec in ("h264", "avc1")


def test_fractional_frame_rate_is_kept(tmp_path):
    path = write_video(tmp_path / "ntsc.mp4", light_clip(10, []), fps=29.97)
    assert probe_video(path).fps == pytest.approx(29.97, abs=1e-3)


def test_batches_cover_every_frame_once_in_order(clip):
    path, frames = clip
    seen = []
    with VideoReader(path) as reader:
        for idx, batch in reader.batches(batch_size=32):
            assert batch.shape[1:] == (120, 160, 3) and batch.dtype == np.uint8
            assert len(batch) <= 32
            seen.extend(idx.tolist())
            # each frame carries its index as the length of a white bar: decoded order is written order
            bar_px = (batch[:, 115, :, 0] > 150).sum(axis=1)
            np.testing.assert_allclose(bar_px, idx % 160, atol=1)
            # H.264 is lossy and smooths the pixel noise, but the mean grey level is kept
            np.testing.assert_allclose(batch.mean(axis=(1, 2, 3)), frames[idx].mean(axis=(1, 2, 3)), atol=1.5)
        assert reader.frames_decoded == 90 and reader.frames_failed == 0
    assert seen == list(range(90))


def test_every_kth_frame_is_the_frame_a_full_decode_gives(clip):
    """``step`` keeps the stream's frames (each frame's bar says its index) and only skips converting the rest."""
    path, _ = clip
    with VideoReader(path) as reader:
        full = np.concatenate([b for _, b in reader.batches(batch_size=32)])
    with VideoReader(path) as reader:
        parts = list(reader.batches(batch_size=4, start=5, stop=80, step=3))
        assert reader.frames_decoded == len(range(5, 80, 3))
    idx = np.concatenate([i for i, _ in parts])
    assert idx.tolist() == list(range(5, 80, 3)) and all(len(b) <= 4 for _, b in parts)
    np.testing.assert_array_equal(np.concatenate([b for _, b in parts]), full[idx])
    with pytest.raises(ValueError, match="step >= 1"):
        next(VideoReader(path).batches(step=0))


def test_batches_from_the_middle_and_gray_crop(clip):
    path, _ = clip
    with VideoReader(path, gray=True, roi=LIGHT) as reader:
        batches = list(reader.batches(batch_size=7, start=15, stop=40))
    idx = np.concatenate([i for i, _ in batches])
    data = np.concatenate([b for _, b in batches])
    assert idx.tolist() == list(range(15, 40))
    assert data.shape == (25, LIGHT.height, LIGHT.width)
    assert data[5:20].mean() > 200 and data[:5].mean() < 80  # light on over frames 20-34


def test_crop_single_frame_and_batch_and_bounds():
    frames = np.arange(2 * 10 * 12 * 3, dtype=np.uint8).reshape(2, 10, 12, 3)
    roi = ROI(2, 3, 4, 5)
    np.testing.assert_array_equal(crop(frames, roi), frames[:, 3:8, 2:6])
    np.testing.assert_array_equal(crop(frames[0], roi), frames[0, 3:8, 2:6])
    with pytest.raises(ValueError, match="inside the 12x10 frame"):
        crop(frames, ROI(10, 0, 4, 4))
    with pytest.raises(ValueError, match="width, height > 0"):
        ROI(0, 0, 0, 4)
    assert ROI.parse("1,2,3,4") == ROI(1, 2, 3, 4)
    with pytest.raises(ValueError, match="x,y,width,height"):
        ROI.parse("1,2,3")


def test_light_switches_on_a_trace():
    trace = np.full(100, 40.0) + np.random.default_rng(1).normal(0, 2, 100)
    trace[10:30] += 120
    trace[50:51] += 120  # a one-frame reflection
    trace[70:] += 120  # on until the end: no offset
    on, off = light_switches(trace, min_on_frames=3)
    assert on.tolist() == [10, 70]
    assert off.tolist() == [30]
    assert light_switches(np.full(50, 80.0) + np.random.default_rng(2).normal(0, 3, 50))[0].size == 0


def test_light_on_at_start_has_no_onset():
    trace = np.r_[np.full(10, 200.0), np.full(10, 20.0)]
    on, off = light_switches(trace)
    assert on.size == 0 and off.tolist() == [10]


def test_detect_light_switches_in_a_video_finds_the_exact_frames(clip):
    path, _ = clip
    events = detect_light_switches(path, LIGHT)
    assert [(e["kind"], e["frame"]) for e in events] == [("light_on", 20), ("light_off", 35), ("light_on", 61)]
    assert events[0]["time_s"] == pytest.approx(20 / 30)
    dark = roi_brightness(path, ROI(0, 0, 16, 12))
    assert dark.shape == (90,) and dark.max() < 80


def test_write_video_refuses_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="even frame width and height"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 11, 10, 3), np.uint8), fps=10)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.mp4", np.zeros((2, 10, 10, 3), np.float32), fps=10)
    with pytest.raises(ValueError, match="at least one frame"):
        write_video(tmp_path / "none.mp4", [], fps=10)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_missing_empty_text_and_directory_inputs(tmp_path):
    with pytest.raises(VideoError, match="file not found"):
        probe_video(tmp_path / "none.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        probe_video(tmp_path / "empty.mp4")
    (tmp_path / "notes.mp4").write_text("animal 12, day 3\n")
    with pytest.raises(VideoError, match="not a video"):
        probe_video(tmp_path / "notes.mp4")
    with pytest.raises(VideoError, match="directory"):
        probe_video(tmp_path)


def test_truncated_videos_are_caught(tmp_path, clip):
    path, _ = clip
    data = path.read_bytes()
    # Our files put the index first (faststart): a cut file opens, but its end is missing.
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="truncated or corrupt video, header says 90 frames but only"):
        probe_video(cut)
    # A camera that records the index last and dies mid-recording leaves no index at all.
    write_video(tmp_path / "tail.mp4", light_clip(30, []), fps=30, faststart=False)
    tail = (tmp_path / "tail.mp4").read_bytes()
    (tmp_path / "tail_cut.mp4").write_bytes(tail[: len(tail) - 400])
    with pytest.raises(VideoError, match="corrupt or truncated MP4/MOV"):
        probe_video(tmp_path / "tail_cut.mp4")


def test_a_probed_file_overwritten_in_place_is_probed_again(tmp_path, clip):
    """probe_video keeps its answer per file state: a file cut short (or replaced) after a probe is seen as it is."""
    path, _ = clip
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(path.read_bytes())
    assert probe_video(copy).n_frames == 90
    assert probe_video(copy).path == copy  # the kept answer names the path asked about
    copy.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # as a copy that stopped half way
    with pytest.raises(VideoError, match="truncated or corrupt video"):
        probe_video(copy)
    write_video(copy, light_clip(30, []), fps=30)
    assert probe_video(copy).n_frames == 30


def test_a_one_frame_video_is_a_video_not_a_truncated_one(tmp_path):
    # the end-of-file seek cannot land back on a file's only frame: it was refused as "1 frames but only 1"
    path = write_video(tmp_path / "one.mp4", light_clip(1, []), fps=2.0)
    info = probe_video(path)
    assert info.n_frames == 1
    with VideoReader(path) as reader:
        assert sum(len(b) for _, b in reader.batches(8)) == 1


def test_a_region_relative_to_a_chamber_and_one_outside_the_frame():
    from pathlib import Path

    from pose_models.video import ROI, VideoError, VideoInfo, check_roi

    chamber = ROI(160, 0, 160, 120)
    assert ROI(10, 20, 5, 6).within(chamber) == ROI(170, 20, 5, 6)
    with pytest.raises(ValueError, match="expected a region inside the 160x120 region 160,0,160,120"):
        ROI(150, 0, 20, 6).within(chamber)
    info = VideoInfo(path=Path("v.mp4"), fps=15.0, n_frames=10, width=320, height=120, codec="avc1")
    check_roi(chamber, info)
    with pytest.raises(VideoError, match=r"v.mp4: expected a region inside the 320x120 frame, got roi 170,0,160,120"):
        check_roi(ROI(170, 0, 160, 120), info)


def test_the_same_frames_give_the_same_file_every_time(tmp_path):
    """x264's macroblock tree gave different bytes for the same frames from run to run (about half of
    repeated writes of a synthetic face clip differed); with it off every write is the same file."""
    import hashlib

    from behavior.synthetic.base import simulate_clip
    from behavior.synthetic.training import _face_params

    frames = simulate_clip("grimace", seed=10002, **_face_params(np.random.default_rng(10002), "right")).frames
    digests = set()
    for i in range(6):
        path = write_video(tmp_path / f"copy{i}.mp4", frames, fps=30)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
