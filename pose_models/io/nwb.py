"""NWB pose files (ndx-pose): ``PoseEstimation`` per individual, one ``PoseEstimationSeries`` per keypoint.

We write and read pose *estimates* with pynwb + ndx-pose directly rather than through sleap-io,
because sleap-io 0.9.5's NWB path is not exact: its writer fails on sparse frame sets (it indexes the
timestamps of the labelled frames by frame number) and its reader drops track names, numbering
instances in frame order so that identities swap whenever one animal is missing from a frame.
NWB *training* data (``PoseTraining``, written by SLEAP or DeepLabCut's NWB export) is still read
through sleap-io.

Layout written: one ``PoseEstimation`` named ``track=<individual>`` per individual in the processing
module ``behavior``, sharing one ``Skeleton``; every series holds the individual's frames (timestamps
in seconds, ``frame / fps``; frame numbers when fps is unknown), its confidence, and NaN where a
keypoint is missing. The description records ``fps`` so frame numbers come back exactly.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import h5py
import numpy as np
import xarray as xr

from pose_models.io import PoseFileError, register_format
from pose_models.poses import from_numpy

_TRACK_PREFIX = "track="


def _series_name(keypoint: str) -> str:
    """NWB object names cannot hold '/' or ':'; the skeleton's node list keeps the real names."""
    return keypoint.replace("/", "_").replace(":", "_")


def save_nwb(ds: xr.Dataset, path: Path) -> None:
    """Write Poses as NWB with ndx-pose ``PoseEstimation`` containers (one per individual)."""
    from ndx_pose import PoseEstimation, PoseEstimationSeries, Skeleton, Skeletons
    from pynwb import NWBHDF5IO, NWBFile

    if "image" in ds.coords:
        raise PoseFileError(
            "an NWB PoseEstimation holds a video's frames, got a labelled-frame set of images; "
            "save it as .slp, .h5, .csv or .nc"
        )
    fps = ds.attrs.get("fps")
    frames = ds["frame"].values.astype(np.int64)
    timestamps = frames / fps if fps else frames.astype(float)
    keypoints = [str(k) for k in ds["keypoints"].values]
    if len({_series_name(k) for k in keypoints}) != len(keypoints):
        raise PoseFileError(f"keypoint names {keypoints} collide once '/' and ':' are replaced for NWB")
    edges = [[keypoints.index(a), keypoints.index(b)] for a, b in ds.attrs.get("skeleton", [])]
    skeleton = Skeleton(
        name="skeleton",
        nodes=keypoints,
        edges=np.asarray(edges, dtype="uint8").reshape(-1, 2),
    )
    nwbfile = NWBFile(
        session_description="painbattery poses",
        identifier=str(uuid4()),
        session_start_time=datetime.now(UTC),
    )
    module = nwbfile.create_processing_module(name="behavior", description="pose estimates")
    module.add(Skeletons(skeletons=[skeleton]))
    description = json.dumps({"writer": "painbattery", "fps": fps, "kind": ds.attrs.get("kind")})
    for i, individual in enumerate(ds["individuals"].values):
        series = []
        for k, keypoint in enumerate(keypoints):
            series.append(
                PoseEstimationSeries(
                    name=_series_name(keypoint),
                    description=f"{keypoint} of {individual}",
                    data=ds["position"].values[:, :, k, i],
                    unit="pixels",
                    reference_frame="(0,0) is the top-left corner of the video frame",
                    timestamps=timestamps if not series else series[0],  # share one timestamps array
                    confidence=ds["confidence"].values[:, k, i],
                    confidence_definition="model score per keypoint; 1 for human labels",
                )
            )
        module.add(
            PoseEstimation(
                name=f"{_TRACK_PREFIX}{individual}",
                pose_estimation_series=series,
                description=description,
                scorer=str(ds.attrs.get("dlc_scorer") or ds.attrs.get("source_software") or "unknown"),
                source_software=str(ds.attrs.get("source_software") or "unknown"),
                skeleton=skeleton,
                dimensions=None,
            )
        )
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)


def _pose_estimations(nwbfile) -> list:
    found = []
    for module in nwbfile.processing.values():
        for obj in module.data_interfaces.values():
            if type(obj).__name__ == "PoseEstimation":
                found.append(obj)
    return found


def load_nwb(path: Path, *, fps: float | None = None) -> xr.Dataset:
    """Read an NWB file: ndx-pose ``PoseEstimation`` directly, ``PoseTraining`` through sleap-io."""
    from pynwb import NWBHDF5IO

    if not h5py.is_hdf5(path):
        raise PoseFileError(f"{path}: expected an NWB (HDF5) file, got another file")
    with NWBHDF5IO(str(path), mode="r", load_namespaces=True) as io:
        nwbfile = io.read()
        estimations = _pose_estimations(nwbfile)
        if not estimations:
            return _load_training_via_sleap_io(path, fps)
        individuals, per_individual = [], []
        stored_fps = None
        keypoints: list[str] | None = None
        skeleton_pairs: list[list[str]] = []
        kind = "predictions"
        for pe in estimations:
            name = pe.name[len(_TRACK_PREFIX) :] if pe.name.startswith(_TRACK_PREFIX) else pe.name
            names = list(pe.pose_estimation_series)
            if pe.skeleton is not None:
                names = [str(n) for n in pe.skeleton.nodes[:]]
                skeleton_pairs = [[names[a], names[b]] for a, b in np.asarray(pe.skeleton.edges[:]).reshape(-1, 2)]
            if keypoints is None:
                keypoints = names
            elif names != keypoints:
                raise PoseFileError(f"{path}: expected the same keypoints for every individual, got {names}")
            meta = _description_meta(pe.description)
            stored_fps = stored_fps or meta.get("fps")
            kind = meta.get("kind") or kind
            series = [pe.pose_estimation_series[_series_name(n)] for n in keypoints]
            first = series[0]
            if first.timestamps is not None:
                times = np.asarray(first.timestamps[:], dtype=float)
            else:
                rate = float(first.rate)
                stored_fps = stored_fps or rate
                times = float(first.starting_time or 0.0) + np.arange(first.data.shape[0]) / rate
            data = np.stack([np.asarray(s.data[:], dtype=float) for s in series], axis=-1)  # (n, space, kp)
            no_conf = np.full(len(times), np.nan)
            conf = np.stack(
                [np.asarray(s.confidence[:], dtype=float) if s.confidence is not None else no_conf for s in series],
                axis=-1,
            )
            individuals.append(name)
            per_individual.append((times, data, conf))
    use_fps = fps or stored_fps
    all_times = np.unique(np.concatenate([t for t, _, _ in per_individual]))
    frames = np.rint(all_times * use_fps).astype(np.int64) if use_fps else np.rint(all_times).astype(np.int64)
    n_space = per_individual[0][1].shape[1]
    position = np.full((len(all_times), n_space, len(keypoints), len(individuals)), np.nan)
    confidence = np.full((len(all_times), len(keypoints), len(individuals)), np.nan)
    for i, (times, data, conf) in enumerate(per_individual):
        rows = np.searchsorted(all_times, times)
        position[rows, :, :, i] = data
        confidence[rows, :, i] = conf
    return from_numpy(
        position,
        confidence,
        keypoint_names=keypoints,
        individual_names=individuals,
        fps=use_fps,
        frames=frames,
        source_software="NWB",
        source_file=str(path),
        skeleton=skeleton_pairs,
        kind=kind if kind in ("predictions", "labels") else "predictions",
    )


def _description_meta(description: str | None) -> dict:
    try:
        meta = json.loads(description or "")
    except json.JSONDecodeError:
        # Other writers: accept "fps=30" anywhere in free text.
        m = re.search(r"fps\s*[=:]\s*([0-9.]+)", description or "")
        return {"fps": float(m.group(1))} if m else {}
    return meta if isinstance(meta, dict) else {}


def _load_training_via_sleap_io(path: Path, fps: float | None) -> xr.Dataset:
    import sleap_io as sio

    from pose_models.io.sleap import labels_to_poses

    return labels_to_poses(sio.load_nwb(str(path)), path, fps=fps)


register_format("nwb", (".nwb",), "an NWB (ndx-pose) file", load=load_nwb, save=save_nwb)
