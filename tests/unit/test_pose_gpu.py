"""CUDA paths (skipped without a GPU): mixed-precision training and the torch inference backend."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def _frames():
    from behavior.synthetic import simulate_clip
    from pose_models.data import LabelledFrames

    names, images, points = [], [], []
    for seed in range(4):
        clip = simulate_clip("hargreaves", seed=seed, latencies_s=[1.0])
        for f in (0, 10, 20, 30):
            names.append(f"s{seed}f{f}")
            images.append(clip.frames[f])
            points.append(clip.poses["position"].values[f, :, :, 0].T)
    keypoints = [str(k) for k in clip.poses["keypoints"].values]
    return LabelledFrames(names, images, np.asarray(points), keypoints, [], "synthetic")


def test_mixed_precision_training_and_cuda_inference_match_cpu(tmp_path):
    import torch

    from pose_models.inference import PoseEstimator
    from pose_models.nets.model import ModelConfig, TrainConfig
    from pose_models.train import pick_device, train_model

    assert pick_device().type == "cuda"
    config = ModelConfig(input_scale=1.0, train=TrainConfig(epochs=3, batch_size=16))
    result = train_model(_frames(), tmp_path / "m", config, device="cuda")
    assert np.isfinite(result.best_val_error_px)
    cuda = PoseEstimator.from_dir(tmp_path / "m", backend="torch", device="cuda")
    cpu = PoseEstimator.from_dir(tmp_path / "m", backend="torch", device="cpu")
    assert cuda.backend.startswith("torch:cuda")
    images = np.stack([cpu.preprocess(i) for i in _frames().images[:4]])
    hm_gpu, _ = cuda._run(images)
    hm_cpu, _ = cpu._run(images)
    np.testing.assert_allclose(hm_gpu, hm_cpu, atol=5e-2)  # fp16 autocast on the GPU
    assert torch.cuda.max_memory_allocated() > 0
