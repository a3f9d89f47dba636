"""Gait on real paw tracks: LocoMouse's walkway trial against MouseWalker's control ranges, B-SOiD's open field,
and the CFA mouse (which does not walk)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pandas as pd
import pytest

from behavior.features.gait import GaitConfig, GaitError, analyse_gait, gait_measures, paw_tracks

pytestmark = pytest.mark.realdata

LOCOMOUSE = "locomouse/output/G6AE1/3_11_2013_S1/data/G6AE1_98_28_1_control_S1T1_R.mat"
MOUSEWALKER = "mousewalker/Rawdata Plots/MouseWalker _TestData(Input File).xlsx"
BSOID = "bsoid/yttri-bottomup_dlc-model/examples/raw_clip{}DLC_resnet50_OpenFieldHighResApr8shuffle1_1030000.csv"
CFA = (
    "prj-mouse-pain-cfa/Videos/shortened_2023-10-25_CFA_010_267M_trackingDLC_resnet50_pawtracking_"
    "comparisionMay7shuffle1_500000.csv"
)
NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def read_xlsx_sheet(path) -> pd.DataFrame:
    """First sheet of an .xlsx (shared strings and numbers only), header in the first row: no openpyxl needed."""
    with zipfile.ZipFile(path) as z:
        shared = [
            "".join(t.text or "" for t in si.iter(f"{NS}t"))
            for si in ET.fromstring(z.read("xl/sharedStrings.xml")).iter(f"{NS}si")
        ]
        root = ET.fromstring(z.read("xl/worksheets/sheet1.xml"))
    rows = []
    for r in root.iter(f"{NS}row"):
        row = {}
        for c in r.iter(f"{NS}c"):
            v = c.find(f"{NS}v")
            if v is None:
                continue
            col = re.match(r"[A-Z]+", c.get("r")).group()
            row[col] = shared[int(v.text)] if c.get("t") == "s" else float(v.text) if c.get("t") is None else v.text
        rows.append(row)
    header = rows[0]
    return pd.DataFrame([{header[k]: v for k, v in r.items() if k in header} for r in rows[1:]])


@pytest.fixture(scope="module")
def mousewalker_controls(shared_data) -> pd.DataFrame:
    df = read_xlsx_sheet(shared_data / MOUSEWALKER)
    return df[df["Condition"] == "Control"]


def locomouse_poses(shared_data, fps: float = 400.0):
    import scipy.io

    from pose_models.poses import from_numpy

    m = scipy.io.loadmat(shared_data / LOCOMOUSE)
    tracks = m["final_tracks"]  # 3 x 5 x frames: x, y (bottom view), z (side view) of FR, HR, FL, HL, snout
    tail = m["tracks_tail"][:2, :1]  # the tail's first point: its base
    pos = np.concatenate([tracks[:2], tail], axis=1).transpose(2, 0, 1)
    names = ["right_fore", "right_hind", "left_fore", "left_hind", "snout", "tailbase"]
    return from_numpy(pos[..., None], keypoint_names=names, fps=fps)


def _values(analysis) -> dict[str, float]:
    return {m.measure: m.value for m in gait_measures(analysis, None)}


def test_locomouse_walkway_steps_within_mousewalker_control_ranges(shared_data, mousewalker_controls):
    # LocoMouse stores no frame rate (its rigs ran at 400 fps) nor scale: 1 px/mm keeps figures in pixels;
    # duty cycle and phase are free of both.
    a = analyse_gait(locomouse_poses(shared_data), 400.0, 1.0, GaitConfig())
    v = _values(a)
    assert a.quality["runs_kept"] == 1 and v["strides_n"] >= 20
    for paw in ("left_fore", "right_fore", "left_hind", "right_hind"):
        assert v[f"{paw}_step_cycle_s"] > 0 and np.isfinite(v[f"{paw}_duty_cycle"]), paw
    ctl = mousewalker_controls.astype({"duty Fact": float, "Phase F": float, "Phase H": float, "freq": float})
    lo, hi = ctl["duty Fact"].min(), ctl["duty Fact"].max()  # 0.50-0.64 in 21 control animals
    # a slower walk than MouseWalker's controls (30-54 cm/s) has a longer stance: within 0.05 of their range
    assert lo - 0.05 <= v["duty_cycle"] <= hi + 0.05, (v["duty_cycle"], lo, hi)
    # girdle phases (MouseWalker's Phase F / H: 0.48-0.53 / 0.43-0.56): within 0.05 of the controls' range
    assert ctl["Phase H"].min() - 0.05 <= v["phase_lh_rh"] <= ctl["Phase H"].max() + 0.05
    assert ctl["Phase F"].min() - 0.05 <= v["phase_lf_rf"] <= ctl["Phase F"].max() + 0.05
    for diag in ("phase_lf_rh", "phase_rf_lh"):  # trot-like: diagonal pairs nearly in phase
        assert min(v[diag], 1 - v[diag]) <= 0.2, diag
    assert v["regularity_index_percent"] >= 80


def test_bsoid_open_field_bouts_and_strides(shared_data):
    from pose_models.io import load_poses

    for clip in (1, 2):
        poses = load_poses(shared_data / BSOID.format(clip), fps=60.0)
        config = GaitConfig(mode="open-field")
        _, body, used = paw_tracks(poses, config)
        assert used["left_hind"] == "Hind Paw L" and used["tailbase"] == "Butt/Proximal Tail"
        ppm = float(np.nanmedian(np.hypot(*(body["snout"] - body["tailbase"]).T))) / 80.0  # body ~80 mm
        a = analyse_gait(poses, 60.0, ppm, config)
        v = _values(a)
        kept = a.bouts[a.bouts["kept"]]
        assert len(kept) >= 10 and v["strides_n"] >= 60, clip
        assert (a.bouts.loc[~a.bouts["kept"], "reason"] != "").all()
        assert 0.3 <= v["duty_cycle"] <= 0.7 and 3.0 <= v["cadence_hz"] <= 8.0, clip
        for r in a.strides.itertuples():  # every stride lies in a kept bout
            b = kept[kept["bout"] == r.bout].iloc[0]
            assert b.start_frame - 30 <= r.start_frame <= b.end_frame + 30


def test_cfa_mouse_does_not_walk_so_no_gait_is_scored(shared_data):
    # The CFA README names no injected paw and the mouse barely moves in the 36 s (median body speed 8 mm/s):
    # no bout of locomotion, said in one line, rather than ratios from standing still.
    from pose_models.io import load_poses

    poses = load_poses(shared_data / CFA, fps=30.0)
    _, body, used = paw_tracks(poses, GaitConfig(mode="open-field"))
    assert used["left_hind"] == "L_hindpaw" and used["snout"] == "mouth"
    ppm = float(np.nanmedian(np.hypot(*(body["snout"] - body["tailbase"]).T))) / 80.0
    with pytest.raises(GaitError, match="no bout of steady locomotion"):
        analyse_gait(poses, 30.0, ppm, GaitConfig(mode="open-field"))
