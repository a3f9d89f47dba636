"""SLEAP ``.slp`` / ``.pkg.slp`` / ``.analysis.h5`` files, through sleap-io.

Both go through a sleap-io ``Labels`` object: :func:`labels_to_poses` and :func:`poses_to_labels`
are the two conversions, and each file format is only a sleap-io load/save call around them.

Conventions: tracks are individuals (untracked instances are numbered in frame order); where a frame
has both user-labelled and predicted instances the user's win; user points get confidence 1 (NaN
when not visible), predicted points their score. Labelled-frame sets keep their image paths as an
image-list video, so a DeepLabCut ``CollectedData`` file survives a trip through ``.slp``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from pose_models.io import PoseFileError, register_format
from pose_models.poses import from_numpy


def labels_to_poses(labels, path: Path, *, fps: float | None = None, video_index: int = 0) -> xr.Dataset:
    """Convert a sleap-io ``Labels`` to a Poses dataset (one video, one skeleton).

    Raises
    ------
    PoseFileError
        If the labels hold no frames, several skeletons, or no such video.
    """
    import sleap_io as sio

    if len(labels.skeletons) != 1:
        raise PoseFileError(f"{path}: expected one skeleton, got {len(labels.skeletons)}")
    if not labels.videos:
        raise PoseFileError(f"{path}: holds no video and no frames")
    if not 0 <= video_index < len(labels.videos):
        raise PoseFileError(f"{path}: expected video index < {len(labels.videos)}, got {video_index}")
    video = labels.videos[video_index]
    skeleton = labels.skeletons[0]
    node_names = list(skeleton.node_names)
    frames = sorted(
        (lf for lf in labels.labeled_frames if lf.video is video and len(lf.instances) > 0),
        key=lambda lf: lf.frame_idx,
    )
    if not frames:
        n_videos = len(labels.videos)
        raise PoseFileError(
            f"{path}: holds no labelled frames with instances for video {video_index} "
            f"(of {n_videos}; {len(labels.labeled_frames)} frames in all)"
        )
    track_names = [t.name for t in labels.tracks]
    if len(set(track_names)) != len(track_names):
        raise PoseFileError(f"{path}: expected unique track names, got {track_names}")
    individuals = list(track_names)
    # Per frame: user instances win over predictions; untracked ones get numbered slots.
    chosen = []
    n_untracked = 0
    for lf in frames:
        user = [inst for inst in lf.instances if not isinstance(inst, sio.PredictedInstance)]
        insts = user if user else list(lf.instances)
        untracked = [inst for inst in insts if inst.track is None]
        n_untracked = max(n_untracked, len(untracked))
        chosen.append(insts)
    extra = [f"individual_{i}" for i in range(n_untracked)]
    clash = set(extra) & set(individuals)
    if clash:
        raise PoseFileError(f"{path}: track names {sorted(clash)} clash with untracked instance numbering")
    individuals += extra
    n, n_kp = len(frames), len(node_names)
    position = np.full((n, 2, n_kp, len(individuals)), np.nan)
    confidence = np.full((n, n_kp, len(individuals)), np.nan)
    all_user = True
    for t, insts in enumerate(chosen):
        slot = 0
        for inst in insts:
            if inst.track is not None:
                i = track_names.index(inst.track.name)
            else:
                i = len(track_names) + slot
                slot += 1
            if position[t, 0, :, i].size and np.isfinite(position[t, 0, :, i]).any():
                raise PoseFileError(f"{path}: frame {frames[t].frame_idx} has two instances on one track")
            if isinstance(inst, sio.PredictedInstance):
                all_user = False
                pts = inst.numpy(scores=True)
                position[t, :, :, i] = pts[:, :2].T
                confidence[t, :, i] = pts[:, 2]
            else:
                pts = inst.numpy()
                position[t, :, :, i] = pts.T
                confidence[t, :, i] = np.where(np.isnan(pts).any(axis=1), np.nan, 1.0)
    frame_idx = np.array([lf.frame_idx for lf in frames], dtype=np.int64)
    images = None
    if isinstance(video.filename, list):
        images = [str(video.filename[f]) if f < len(video.filename) else "" for f in frame_idx]
    if fps is None:
        fps = _video_fps(video)
    ds = from_numpy(
        position,
        confidence,
        keypoint_names=node_names,
        individual_names=individuals,
        fps=fps,
        frames=frame_idx,
        images=images,
        source_software="SLEAP",
        source_file=str(path),
        skeleton=[list(e) for e in skeleton.edge_names],
        kind="labels" if all_user else "predictions",
    )
    if not isinstance(video.filename, list):
        ds.attrs["video_file"] = str(video.filename)
    return ds


def _video_fps(video) -> float | None:
    fps = (video.backend_metadata or {}).get("fps")
    try:
        fps = float(fps) if fps is not None else None
    except (TypeError, ValueError):
        return None
    return fps if fps and fps > 0 else None


def poses_to_labels(ds: xr.Dataset):
    """Convert a Poses dataset to a sleap-io ``Labels`` (one video, one skeleton, a track per individual)."""
    import sleap_io as sio

    if ds.sizes["space"] != 2:
        raise PoseFileError(f"expected 2-D poses for SLEAP, got {ds.sizes['space']} spatial dims")
    node_names = [str(k) for k in ds["keypoints"].values]
    skeleton = sio.Skeleton(name="skeleton", nodes=node_names, edges=[tuple(e) for e in ds.attrs.get("skeleton", [])])
    frames = ds["frame"].values.astype(int)
    if "image" in ds.coords:
        # An image-list video indexed by frame number: fill any frame number we do not hold.
        names = [""] * (int(frames.max()) + 1)
        for f, img in zip(frames, ds["image"].values, strict=True):
            names[f] = str(img)
        video = sio.Video(filename=names, open_backend=False)
        # Without an open backend sleap-io serialises backend_metadata: describe the image list there.
        video.backend_metadata.update(type="ImageVideo", filename=names[0], filenames=names)
    else:
        # The pose file is not the video; without a known video, SLEAP gets a placeholder name.
        video_file = ds.attrs.get("video_file") or "unknown_video.mp4"
        video = sio.Video(filename=str(video_file), open_backend=False)
    if ds.attrs.get("fps"):
        video.backend_metadata["fps"] = float(ds.attrs["fps"])
    tracks = [sio.Track(name=str(i)) for i in ds["individuals"].values]
    pos = ds["position"].values
    conf = ds["confidence"].values
    labels_kind = ds.attrs.get("kind") == "labels"
    lfs = []
    for t, f in enumerate(frames):
        instances = []
        for i, track in enumerate(tracks):
            pts = pos[t, :, :, i].T  # (n_nodes, 2)
            if np.isnan(pts).all():
                continue
            if labels_kind:
                instances.append(sio.Instance.from_numpy(pts, skeleton=skeleton, track=track))
            else:
                scores = conf[t, :, i]
                score = float(np.nanmean(scores)) if np.isfinite(scores).any() else 0.0
                instances.append(
                    sio.PredictedInstance.from_numpy(
                        pts, skeleton=skeleton, point_scores=scores, score=score, track=track
                    )
                )
        lfs.append(sio.LabeledFrame(video=video, frame_idx=int(f), instances=instances))
    return sio.Labels(labeled_frames=lfs, videos=[video], skeletons=[skeleton], tracks=tracks)


# ------------------------------------------------------------------------------------- formats


def load_slp(path: Path, *, fps: float | None = None) -> xr.Dataset:
    """Read a SLEAP ``.slp`` / ``.pkg.slp`` labels or predictions file."""
    import sleap_io as sio

    if not h5py.is_hdf5(path):
        raise PoseFileError(f"{path}: expected a SLEAP .slp (HDF5) file, got another file")
    return labels_to_poses(sio.load_slp(str(path), open_videos=False), path, fps=fps)


def save_slp(ds: xr.Dataset, path: Path) -> None:
    """Write a SLEAP ``.slp`` file (no embedded images)."""
    import sleap_io as sio

    sio.save_slp(poses_to_labels(ds), str(path), embed=False, verbose=False)


def _sniff_analysis_h5(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return "tracks" in f and "node_names" in f and isinstance(f["tracks"], h5py.Dataset)
    except OSError:
        return False


def load_analysis_h5(path: Path, *, fps: float | None = None) -> xr.Dataset:
    """Read a SLEAP ``.analysis.h5`` file (every frame of one video, one track per individual)."""
    import sleap_io as sio

    if not _sniff_analysis_h5(path):
        raise PoseFileError(f"{path}: expected a SLEAP analysis HDF5 (datasets tracks, node_names), got another file")
    return labels_to_poses(sio.load_analysis_h5(str(path)), path, fps=fps)


def save_analysis_h5(ds: xr.Dataset, path: Path) -> None:
    """Write a SLEAP ``.analysis.h5`` file (SLEAP's MATLAB-order layout)."""
    import sleap_io as sio

    if "image" in ds.coords:
        raise PoseFileError(
            f"a SLEAP .analysis.h5 holds the frames of one video, got a labelled-frame set of "
            f"{ds.sizes['time']} images; save it as .slp, .h5, .csv or .nc"
        )
    sio.save_analysis_h5(poses_to_labels(ds), str(path), all_frames=False)


register_format("slp", (".slp", ".pkg.slp"), "a SLEAP .slp file", load=load_slp, save=save_slp)
register_format(
    "sleap_analysis_h5",
    (".analysis.h5",),
    "a SLEAP .analysis.h5 file",
    load=load_analysis_h5,
    save=save_analysis_h5,
    sniff=_sniff_analysis_h5,
)
