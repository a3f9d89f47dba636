"""Running a trained pose model: ``PoseEstimator.from_dir(dir).predict_video(path) -> Poses``.

Backends:

- ``onnx`` - ONNX Runtime on the CPU. The model is exported once to ``model.onnx`` beside the weights
  (re-exported when the weights change) and run with a fixed thread count; this path never imports
  torch, which keeps memory low.
- ``torch`` - PyTorch, on CUDA when available (mixed precision) or on the CPU.
- ``auto`` - ``torch`` on a CUDA machine, ``onnx`` otherwise.

``predict_video`` streams: a reader thread decodes and preprocesses batches into a bounded queue
while the network runs, so memory stays flat however long the video, and decoding overlaps inference.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np
import xarray as xr

from pose_models.config import parse_yaml
from pose_models.geometry import preprocess, to_original
from pose_models.nets.decoding import decode
from pose_models.poses import append_log, from_numpy

if TYPE_CHECKING:
    from pose_models.video import ROI

__all__ = [
    "ModelDirError",
    "PoseEstimator",
    "export_onnx",
    "resolve_precision",
    "weights_digest",
    "write_calibration_frames",
]

INPUT_MULTIPLE = 16
ONNX_FILE = "model.onnx"
ONNX_META = "model.onnx.json"
ONNX_INT8_FILE = "model.int8.onnx"
ONNX_INT8_META = "model.int8.onnx.json"
CALIBRATION_FILE = "calibration.npz"  # training frames (network inputs) for int8 calibration

Precision = Literal["auto", "fp32", "int8"]


class ModelDirError(ValueError):
    """A model directory is missing files or was written by an incompatible version."""


def _cuda_present() -> bool:
    """True if an NVIDIA driver is visible (checked without importing torch)."""
    return Path("/proc/driver/nvidia/version").exists() or bool(os.environ.get("PAINBATTERY_FORCE_CUDA"))


def weights_digest(path: Path) -> str:
    """SHA-256 of a weights (or calibration) file, recorded with exports and outputs."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resolve_precision(model_dir: str | Path, precision: Precision = "auto") -> Literal["fp32", "int8"]:
    """The ONNX precision to run: ``auto`` is int8 when the model holds calibration frames, else fp32."""
    if precision not in ("auto", "fp32", "int8"):
        raise ValueError(f"expected precision auto, fp32 or int8, got {precision!r}")
    has_calibration = (Path(model_dir) / CALIBRATION_FILE).is_file()
    if precision == "int8" and not has_calibration:
        raise ModelDirError(
            f"{model_dir}: int8 needs the calibration frames training writes ({CALIBRATION_FILE}); "
            "retrain the model or use precision fp32"
        )
    if precision == "auto":
        return "int8" if has_calibration else "fp32"
    return precision


def export_onnx(
    model_dir: str | Path,
    *,
    precision: Precision = "fp32",
    input_hw: tuple[int, int] | None = None,
    opset: int = 17,
) -> Path:
    """Export ``weights.pt`` to ONNX (dynamic batch and size), cached beside the weights.

    Parameters
    ----------
    model_dir
        A trained model directory.
    precision
        ``fp32`` writes ``model.onnx``. ``int8`` also writes ``model.int8.onnx``: weights quantised per
        channel and activations per tensor (QDQ, ranges from the model's calibration frames), with the
        heatmap and offset convolutions kept in float so sub-pixel offsets keep their resolution.
        ``auto``: int8 when calibration frames exist.

    Returns
    -------
    Path
        The ONNX file. An export is redone only when the weights, calibration frames or layout change.
    """
    model_dir = Path(model_dir)
    meta = _read_meta(model_dir)
    digest = weights_digest(model_dir / "weights.pt")
    fp32_path = _export_fp32(model_dir, meta, digest, input_hw, opset)
    if resolve_precision(model_dir, precision) == "int8":
        return _export_int8(model_dir, fp32_path, digest, opset)
    return fp32_path


def _export_fp32(
    model_dir: Path, meta: dict[str, Any], digest: str, input_hw: tuple[int, int] | None, opset: int
) -> Path:
    """The float export ``model.onnx`` (cached by weights hash and layout)."""
    onnx_path, sidecar = model_dir / ONNX_FILE, model_dir / ONNX_META
    if _cached(onnx_path, sidecar, _onnx_meta(digest, opset)):
        return onnx_path
    import torch  # only when exporting: running a cached export never imports torch

    from pose_models.nets.model import ModelConfig, PoseNet

    config = ModelConfig.model_validate(meta["config"])
    model = PoseNet(len(meta["keypoints"]), config, pretrained=False)
    model.load_state_dict(torch.load(model_dir / "weights.pt", map_location="cpu", weights_only=True))
    model.eval()

    class Uint8NHWC(torch.nn.Module):
        """Takes the frames as decoded (uint8, batch x height x width x RGB): ORT does the cast and transpose."""

        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.net(x.permute(0, 3, 1, 2).float())

    h, w = input_hw or tuple(meta["input_hw"])
    tmp = _partial(onnx_path)
    torch.onnx.export(
        Uint8NHWC(model),
        (torch.zeros(1, h, w, 3, dtype=torch.uint8),),
        str(tmp),
        input_names=["image"],
        output_names=["heatmap", "offset"],
        dynamic_axes={
            "image": {0: "batch", 2: "height", 3: "width"},
            "heatmap": {0: "batch", 2: "h", 3: "w"},
            "offset": {0: "batch", 2: "h", 3: "w"},
        },
        opset_version=opset,
        dynamo=False,
    )
    tmp.replace(onnx_path)
    sidecar.write_text(json.dumps(_onnx_meta(digest, opset)))
    return onnx_path


def _export_int8(model_dir: Path, fp32_path: Path, digest: str, opset: int) -> Path:
    """Static int8 quantisation of the fp32 export with the model's calibration frames (cached)."""
    int8_path, sidecar = model_dir / ONNX_INT8_FILE, model_dir / ONNX_INT8_META
    expected = _onnx_meta(digest, opset, "int8", weights_digest(model_dir / CALIBRATION_FILE))
    if _cached(int8_path, sidecar, expected):
        return int8_path
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with np.load(model_dir / CALIBRATION_FILE) as npz:
        frames = npz["images"]

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.frames = iter(frames)

        def get_next(self) -> dict[str, np.ndarray] | None:
            frame = next(self.frames, None)
            return None if frame is None else {"image": frame[None]}

    prepared = _partial(model_dir / "model.prep.onnx")
    tmp = _partial(int8_path)
    try:
        quant_pre_process(str(fp32_path), str(prepared))  # shape inference + graph folding, as ORT advises
        graph = onnx.load(str(prepared)).graph
        outputs = {o.name for o in graph.output}
        heads = [n.name for n in graph.node if n.op_type == "Conv" and set(n.output) & outputs]
        quantize_static(
            str(prepared),
            str(tmp),
            Frames(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=heads,
        )
        tmp.replace(int8_path)
    finally:
        prepared.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    sidecar.write_text(json.dumps(expected))
    return int8_path


def _partial(path: Path) -> Path:
    """A per-process temporary name beside ``path``: concurrent exports never mix."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def _cached(path: Path, sidecar: Path, expected: dict[str, Any]) -> bool:
    return path.is_file() and sidecar.is_file() and json.loads(sidecar.read_text()) == expected


def _onnx_meta(
    digest: str, opset: int = 17, precision: str = "fp32", calibration_digest: str | None = None
) -> dict[str, Any]:
    """What a cached export must match: the weights, the input layout and, for int8, the calibration frames."""
    meta: dict[str, Any] = {"weights_sha256": digest, "opset": opset, "input": "uint8 NHWC RGB"}
    if precision != "fp32":
        meta.update(precision=precision, calibration_sha256=calibration_digest, scheme="QDQ per-channel, heads float")
    return meta


def write_calibration_frames(model_dir: str | Path, images: np.ndarray, *, n_max: int = 32, seed: int = 0) -> Path:
    """Save up to ``n_max`` network-input training images (seeded choice) for int8 calibration."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(images), min(n_max, len(images)), replace=False))
    path = Path(model_dir) / CALIBRATION_FILE
    tmp = _partial(path)
    with tmp.open("wb") as fh:
        np.savez_compressed(fh, images=np.ascontiguousarray(images[pick], dtype=np.uint8))
    tmp.replace(path)
    return path


def _read_meta(model_dir: Path) -> dict[str, Any]:
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory not found: {model_dir}")
    missing = [f for f in ("model.yaml", "weights.pt") if not (model_dir / f).is_file()]
    if missing:
        raise ModelDirError(f"{model_dir}: expected a trained model (model.yaml, weights.pt), missing {missing}")
    return parse_yaml((model_dir / "model.yaml").read_text())


class PoseEstimator:
    """A trained model ready to predict; create with :meth:`from_dir`."""

    def __init__(self, model_dir: Path, meta: dict[str, Any], runner: Callable[[np.ndarray], tuple], backend: str):
        self.model_dir = model_dir
        self.meta = meta
        self.keypoints: list[str] = list(meta["keypoints"])
        self.skeleton: list[list[str]] = [list(e) for e in meta.get("skeleton") or []]
        cfg = meta["config"]
        self.scale = float(cfg["input_scale"])
        self.crop = tuple(cfg["crop"]) if cfg.get("crop") else None
        self.stride = int(cfg["head_stride"])
        self.backend = backend
        self._run = runner

    @classmethod
    def from_dir(
        cls,
        model_dir: str | Path,
        *,
        backend: Literal["auto", "onnx", "torch"] = "auto",
        device: str | None = None,
        threads: int | None = None,
        precision: Precision = "auto",
    ) -> PoseEstimator:
        """Load a model directory written by :func:`pose_models.train.train_model`.

        Parameters
        ----------
        backend
            ``onnx`` (CPU, exported once and cached), ``torch`` (CUDA if available) or ``auto``.
        device
            Torch device for the ``torch`` backend (default: CUDA when available).
        threads
            CPU threads for inference (default: all cores).
        precision
            ONNX only: ``int8`` (about twice as fast on the CPU; needs the calibration frames training
            saves), ``fp32``, or ``auto`` = int8 when possible. The torch backend runs fp32 (mixed
            precision on CUDA).
        """
        model_dir = Path(model_dir)
        meta = _read_meta(model_dir)
        threads = threads or os.cpu_count() or 1
        if backend == "auto":
            backend = "torch" if _cuda_present() else "onnx"
        if backend == "onnx":
            import onnxruntime as ort

            chosen = resolve_precision(model_dir, precision)
            onnx_path = export_onnx(model_dir, precision=chosen)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Idle ORT threads must not spin: the decoding thread needs those cores between batches.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

            def run_onnx(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                heatmap, offsets = session.run(None, {"image": np.ascontiguousarray(batch, dtype=np.uint8)})
                return heatmap, offsets

            return cls(model_dir, meta, run_onnx, f"onnx-{chosen}")
        if backend != "torch":
            raise ValueError(f"expected backend auto, onnx or torch, got {backend!r}")
        if precision == "int8":
            raise ValueError("int8 runs on ONNX Runtime: use backend onnx (or precision fp32 with torch)")
        import torch

        from pose_models.nets.model import ModelConfig, PoseNet
        from pose_models.train import pick_device

        dev = pick_device(device)
        if dev.type == "cpu":
            torch.set_num_threads(threads)
        model = PoseNet(len(meta["keypoints"]), ModelConfig.model_validate(meta["config"]), pretrained=False)
        model.load_state_dict(torch.load(model_dir / "weights.pt", map_location="cpu", weights_only=True))
        model = model.to(dev).eval().to(memory_format=torch.channels_last)
        use_amp = dev.type == "cuda"

        @torch.no_grad()
        def run_torch(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(dev).permute(0, 3, 1, 2).float()
            with torch.autocast(dev.type, enabled=use_amp):
                heatmap, offsets = model(x.contiguous(memory_format=torch.channels_last))
            return heatmap.float().cpu().numpy(), offsets.float().cpu().numpy()

        return cls(model_dir, meta, run_torch, f"torch:{dev}")

    # ---------------------------------------------------------------------------------- images

    def preprocess(self, frame: np.ndarray) -> np.ndarray:
        """One RGB frame -> network input (cropped, resized, padded)."""
        return preprocess(frame, self.scale, self.crop, INPUT_MULTIPLE)

    def predict_inputs(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predict on preprocessed inputs ``(B, H, W, 3)``: original-frame positions ``(B, K, 2)``, confidences."""
        heatmap, offsets = self._run(inputs)
        pos, conf = decode(heatmap, offsets, self.stride)
        return to_original(pos, self.scale, self.crop), conf

    def predict_images(
        self, images: list[np.ndarray] | np.ndarray, batch_size: int = 8
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predict keypoints on RGB frames (any sizes): positions ``(N, K, 2)`` and confidences ``(N, K)``."""
        positions, scores = [], []
        for i in range(0, len(images), batch_size):
            inputs = [self.preprocess(img) for img in images[i : i + batch_size]]
            h = max(x.shape[0] for x in inputs)
            w = max(x.shape[1] for x in inputs)
            batch = np.zeros((len(inputs), h, w, 3), np.uint8)
            for j, x in enumerate(inputs):
                batch[j, : x.shape[0], : x.shape[1]] = x
            p, c = self.predict_inputs(batch)
            positions.append(p)
            scores.append(c)
        return np.concatenate(positions), np.concatenate(scores)

    # ----------------------------------------------------------------------------------- video

    def _batches(
        self, path: Path, batch_size: int, start: int, stop: int | None, rois: list[ROI | None], step: int = 1
    ) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        """Decode + preprocess in a thread; yield (frame indices, one input batch per roi), at most 3 queued.

        The video is decoded once whatever the number of regions: each decoded frame is cropped to
        every roi (``None``: the whole frame) and each crop preprocessed for the network.
        """
        from pose_models.video import VideoReader, crop

        q: queue.Queue = queue.Queue(maxsize=3)
        done = object()
        errors: list[BaseException] = []

        def produce() -> None:
            try:
                # one decoding thread: the network already uses the cores; FFmpeg's own threads would fight it
                # BGR as decoded: shrink first, then convert the colour of the small image (4x cheaper)
                with VideoReader(path, decode_threads=1, bgr=True) as reader:
                    for idx, frames in reader.batches(batch_size, start=start, stop=stop, step=step):
                        per_roi = []
                        for roi in rois:
                            region = frames if roi is None else crop(frames, roi)
                            per_roi.append(
                                np.stack([cv2.cvtColor(self.preprocess(f), cv2.COLOR_BGR2RGB) for f in region])
                            )
                        q.put((idx, per_roi))
            except BaseException as exc:  # handed to the consumer and re-raised there
                errors.append(exc)
            finally:
                q.put(done)

        thread = threading.Thread(target=produce, name="painbattery-decode", daemon=True)
        thread.start()
        while (item := q.get()) is not done:
            yield item
        thread.join()
        if errors:
            raise errors[0]

    def predict_video(
        self,
        path: str | Path,
        *,
        roi: ROI | tuple[int, int, int, int] | None = None,
        batch_size: int = 8,
        start: int = 0,
        stop: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        step: int = 1,
    ) -> xr.Dataset:
        """Predict every frame of a video and return Poses (``fps`` from the video, ``confidence`` = score).

        ``roi`` (``x, y, w, h`` pixels): predict inside this region of each frame only (one chamber of a
        multi-chamber rig); positions are still in full-frame pixels, and the roi is in the poses' log.
        ``step`` > 1: predict every ``step``-th frame from ``start`` only (an assay that reads a few frames
        per minute); the other frames stay NaN, and ``attrs["frame_step"]`` says so.
        Memory is bounded by the batch size and the small queue, not by the video's length.

        Raises
        ------
        VideoError
            If the video cannot be read, or ``roi`` does not lie inside its frame.
        """
        return self.predict_video_rois(
            path, [roi], batch_size=batch_size, start=start, stop=stop, progress=progress, step=step
        )[0]

    def predict_video_rois(
        self,
        path: str | Path,
        rois: list[ROI | tuple[int, int, int, int] | None],
        *,
        batch_size: int = 8,
        start: int = 0,
        stop: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        step: int = 1,
    ) -> list[xr.Dataset]:
        """Poses inside each of several regions of one video, decoding the video once (``step``: as in
        :meth:`predict_video`).

        A camera filming a row of chambers gives one session per chamber: each decoded frame is
        cropped to every roi and each crop goes through the network. Returns one Poses per roi (in
        order), positions in full-frame pixels, each log recording its roi and the regions decoded
        with it.

        Raises
        ------
        VideoError
            If the video cannot be read, or a roi does not lie inside its frame (before any decoding).
        """
        from pose_models.video import ROI, check_roi, probe_video

        if not rois:
            raise ValueError("expected at least one region (None for the whole frame), got none")
        path = Path(path)
        info = probe_video(path)
        regions = [None if r is None else (r if isinstance(r, ROI) else ROI(*(int(v) for v in r))) for r in rois]
        for r in regions:
            if r is not None:
                check_roi(r, info, path)
        stop = info.n_frames if stop is None else min(stop, info.n_frames)
        n = stop - start
        k = len(self.keypoints)
        positions = [np.full((n, 2, k, 1), np.nan, np.float64) for _ in regions]
        confidence = [np.full((n, k, 1), np.nan, np.float64) for _ in regions]
        shift = [np.zeros(2) if r is None else np.array([r.x, r.y], np.float64) for r in regions]
        if step < 1:
            raise ValueError(f"expected step >= 1, got {step}")
        done = 0
        for idx, inputs in self._batches(path, batch_size, start, stop, regions, step):
            rows = idx - start
            # crops of one size go through the network together
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for i, x in enumerate(inputs):
                by_shape.setdefault(x.shape[1:], []).append(i)
            for members in by_shape.values():
                pos, conf = self.predict_inputs(np.concatenate([inputs[i] for i in members]))
                for j, i in enumerate(members):
                    part = slice(j * len(idx), (j + 1) * len(idx))
                    positions[i][rows, :, :, 0] = (pos[part] + shift[i]).transpose(0, 2, 1)
                    confidence[i][rows, :, 0] = conf[part]
            done = int(idx[-1]) - start + 1  # frames of the video gone through (the decoder is strict)
            if progress is not None:
                progress(done, n)
        if step > 1:
            done = n  # the frames after the last predicted one were decoded too (a truncation raised)
        texts = [None if r is None else [r.x, r.y, r.width, r.height] for r in regions]
        out = []
        for i, r in enumerate(regions):
            ds = from_numpy(
                positions[i][:done],
                confidence[i][:done],
                keypoint_names=self.keypoints,
                fps=info.fps,
                frames=np.arange(start, start + done),
                source_software="painbattery",
                source_file=str(path),
                skeleton=self.skeleton,
            )
            ds.attrs["video_file"] = str(path)
            ds.attrs["model_dir"] = str(self.model_dir)
            ds.attrs["model_weights_sha256"] = self.meta.get("weights_sha256", "")
            if r is not None:
                ds.attrs["video_roi"] = r.text()
            if step > 1:
                ds.attrs["frame_step"] = step
            out.append(
                append_log(
                    ds,
                    "predict_video",
                    model=str(self.model_dir),
                    backend=self.backend,
                    batch_size=batch_size,
                    roi=texts[i],
                    frames_decoded=done,
                    frame_step=step,
                    rois_decoded_together=len(regions),
                )
            )
        return out


def write_labeled_video(
    video: str | Path,
    poses: xr.Dataset,
    out: str | Path,
    *,
    min_confidence: float = 0.5,
    radius_px: int = 4,
) -> Path:
    """Draw keypoints (coloured per keypoint) and the skeleton onto the video; write H.264."""
    import cv2

    from pose_models.video import VideoReader, probe_video, write_video

    info = probe_video(video)
    keypoints = [str(k) for k in poses["keypoints"].values]
    colours = [
        tuple(
            int(c)
            for c in cv2.applyColorMap(np.uint8([[int(255 * i / max(1, len(keypoints) - 1))]]), cv2.COLORMAP_JET)[0, 0][
                ::-1
            ]
        )
        for i in range(len(keypoints))
    ]
    pos = poses["position"].values[:, :, :, 0]
    conf = poses["confidence"].values[:, :, 0]
    frame_rows = {int(f): i for i, f in enumerate(poses["frame"].values)}
    edges = [(keypoints.index(a), keypoints.index(b)) for a, b in poses.attrs.get("skeleton", [])]

    def frames() -> Iterator[np.ndarray]:
        with VideoReader(video) as reader:
            for idx, batch in reader.batches(32):
                for f, frame in zip(idx, batch, strict=True):
                    frame = np.ascontiguousarray(frame)
                    row = frame_rows.get(int(f))
                    if row is not None:
                        ok = np.isfinite(pos[row]).all(axis=0) & (np.nan_to_num(conf[row]) >= min_confidence)
                        pts = [tuple(int(np.rint(v)) for v in pos[row][:, k]) for k in range(len(keypoints))]
                        for a, b in edges:
                            if ok[a] and ok[b]:
                                cv2.line(frame, pts[a], pts[b], (255, 255, 255), 1, cv2.LINE_AA)
                        for k in range(len(keypoints)):
                            if ok[k]:
                                cv2.circle(frame, pts[k], radius_px, colours[k], -1, cv2.LINE_AA)
                    yield frame

    h, w = info.height, info.width
    if h % 2 or w % 2:
        raise ValueError(f"expected an even-sized video for H.264, got {w}x{h}")
    return write_video(out, frames(), info.fps)
