"""Training labels from SLEAP files: a .pkg.slp with embedded frames, and clear errors for missing videos."""

from __future__ import annotations

import numpy as np
import pytest

from pose_models.data import LabelsError, load_labelled_frames


def _labels(tmp_path, n_frames=(0, 5, 9)):
    import sleap_io as sio

    from behavior.synthetic import simulate_clip, write_clip

    clip = simulate_clip("hargreaves", seed=3, latencies_s=[0.5])
    video_path = write_clip(clip, tmp_path)["video"]
    names = [str(k) for k in clip.poses["keypoints"].values]
    skeleton = sio.Skeleton(names)
    video = sio.Video.from_filename(str(video_path))
    frames = []
    for f in n_frames:
        pts = clip.poses["position"].values[f, :, :, 0].T
        frames.append(
            sio.LabeledFrame(video=video, frame_idx=f, instances=[sio.Instance.from_numpy(pts, skeleton=skeleton)])
        )
    return clip, video_path, sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skeleton])


def test_pkg_slp_with_embedded_frames_loads_without_the_video(tmp_path):
    import sleap_io as sio

    clip, video_path, labels = _labels(tmp_path)
    pkg = tmp_path / "labels.pkg.slp"
    sio.save_slp(labels, str(pkg), embed="user", verbose=False)
    video_path.unlink()  # the package must carry its own images
    frames = load_labelled_frames(pkg)
    assert len(frames.names) == 3 and frames.keypoint_names == [str(k) for k in clip.poses["keypoints"].values]
    assert frames.images[0].shape == clip.frames[0].shape
    # embedded images are the decoded video frames: close to the rendering
    assert np.abs(frames.images[1].astype(int) - clip.frames[5].astype(int)).mean() < 8
    np.testing.assert_allclose(frames.keypoints[2], clip.poses["position"].values[9, :, :, 0].T)


def test_slp_pointing_at_a_missing_video_names_it(tmp_path):
    import sleap_io as sio

    _, video_path, labels = _labels(tmp_path)
    slp = tmp_path / "labels.slp"
    sio.save_slp(labels, str(slp), verbose=False)
    video_path.unlink()
    with pytest.raises(LabelsError, match="cannot be read from: .*hargreaves"):
        load_labelled_frames(slp)


def test_predictions_only_slp_is_refused(tmp_path):
    import sleap_io as sio

    _, _, labels = _labels(tmp_path)
    skeleton = labels.skeletons[0]
    for lf in labels.labeled_frames:
        pts = lf.instances[0].numpy()
        lf.instances = [
            sio.PredictedInstance.from_numpy(pts, skeleton=skeleton, point_scores=np.ones(len(pts)), score=1.0)
        ]
    slp = tmp_path / "pred.slp"
    sio.save_slp(labels, str(slp), verbose=False)
    with pytest.raises(LabelsError, match="no user-labelled instances"):
        load_labelled_frames(slp)
