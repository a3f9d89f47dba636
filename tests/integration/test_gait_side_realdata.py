"""Side-view gait on AutoGaitA's 25 mm beam example (DLC tracks of 15 joints at 100 fps, one side of the mouse).

AutoGaitA's ``Results`` tables hold the step cycles a human annotated (swing onset to stance end, hind limb) with
the per-frame joint angles, and the same cycles normalised to 25 bins. We find the hind paw's step cycles in the
DLC tracks ourselves and compare them in count and timing; the joint angles are compared frame by frame, and
our normalisation is checked against AutoGaitA's on its own cycles.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pandas as pd
import pytest

from behavior.features.gait import GaitConfig
from behavior.features.gait_side import analyse_side_view, compare_step_cycles, normalise_cycle

pytestmark = pytest.mark.realdata

ROOT = "autogaita/example data/25mm"
RUNS = ((14, 3), (15, 3), (16, 18), (17, 3), (18, 2))
PX_PER_MM = 1 / 0.266  # AutoGaitA's scale: its Original Stepcycles x (mm) is 0.266 x the DLC x (px)
NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
ANGLE_COLUMNS = {"ankle": "Ankle Angle", "knee": "Knee Angle", "hip": "Hip Angle"}


def read_xlsx_rows(path) -> list[dict[str, object]]:
    """Rows of an .xlsx's first sheet as {column letter: value} (inline and shared strings, numbers)."""
    with zipfile.ZipFile(path) as z:
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            shared = [
                "".join(t.text or "" for t in si.iter(f"{NS}t"))
                for si in ET.fromstring(z.read("xl/sharedStrings.xml")).iter(f"{NS}si")
            ]
        root = ET.fromstring(z.read("xl/worksheets/sheet1.xml"))
    rows = []
    for r in root.iter(f"{NS}row"):
        row: dict[str, object] = {}
        for c in r.iter(f"{NS}c"):
            col = re.match(r"[A-Z]+", c.get("r")).group()
            t = c.get("t")
            if t == "inlineStr":
                row[col] = "".join(x.text or "" for x in c.iter(f"{NS}t"))
                continue
            v = c.find(f"{NS}v")
            if v is not None:
                row[col] = shared[int(v.text)] if t == "s" else float(v.text) if t in (None, "n") else v.text
        rows.append(row)
    return rows


def step_cycle_blocks(path, fps: float = 100.0) -> list[pd.DataFrame]:
    """AutoGaitA's Original / Normalised Stepcycles table: a frame per step cycle (blank and 'SC n' rows split them)."""
    rows = read_xlsx_rows(path)
    header = {k: str(v) for k, v in rows[0].items()}
    blocks, cur = [], []
    for r in rows[1:]:
        t = r.get("A")
        # a data row has a time and coordinates; a separator row repeats the cycle's number in every cell
        if isinstance(t, float) and isinstance(r.get("C"), float) and r.get("B") != t:
            cur.append({header[k]: v for k, v in r.items() if k in header})
        elif cur:
            blocks.append(pd.DataFrame(cur))
            cur = []
    if cur:
        blocks.append(pd.DataFrame(cur))
    for b in blocks:
        b["frame"] = np.round(b["Time"].astype(float) * fps).astype(int)
    return blocks


def run_files(shared_data, mouse: int, run: int):
    base = shared_data / ROOT
    tracks = next(base.glob(f"PCCD3_Mouse{mouse}_25mm_run{run}-*SIMINew*.csv"))
    res = base / "Results" / f"ID {mouse} - Run {run}"
    return (
        tracks,
        res / f"ID {mouse} - Run {run} - Original Stepcycles.xlsx",
        res / f"ID {mouse} - Run {run} - Normalised Stepcycles.xlsx",
    )


@pytest.fixture(scope="module")
def runs(shared_data):
    from pose_models.io import load_poses

    if not (shared_data / ROOT).is_dir():
        pytest.skip(f"AutoGaitA example data not found under {shared_data}")
    out = {}
    for mouse, run in RUNS:
        tracks, original, normalised = run_files(shared_data, mouse, run)
        analysis = analyse_side_view(load_poses(tracks, fps=100.0), 100.0, PX_PER_MM, GaitConfig(mode="side"))
        out[mouse] = (analysis, step_cycle_blocks(original), step_cycle_blocks(normalised))
    return out


def _reference(blocks: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.DataFrame(
        {"start_frame": [b["frame"].iloc[0] for b in blocks], "end_frame": [b["frame"].iloc[-1] for b in blocks]}
    )


def test_step_cycles_agree_with_autogaita_results(runs):
    figures = {}
    for mouse, (analysis, original, _) in runs.items():
        hind = analysis.cycles[analysis.cycles["paw"] == "hind"]
        _, figures[mouse] = compare_step_cycles(hind, _reference(original), tolerance_frames=10)
        assert analysis.quality["paws"] == "hind,fore"
    table = pd.DataFrame(figures).T
    print("\n" + table.to_string())
    good = table.loc[[14, 15, 16, 17]]
    # mice 14-17 (two walking right to left): every annotated cycle found, starts within a few frames
    assert good["matched_n"].sum() == good["reference_n"].sum() == 14
    assert good["median_abs_start_diff_frames"].max() <= 4
    assert good["median_abs_end_diff_frames"].max() <= 4
    assert good["max_abs_start_diff_frames"].max() <= 6
    # inside the annotated stretch, no cycle the annotation lacks but two hesitations the annotator skipped:
    # mouse 15's frames 356-408 (0.53 s cycle, 0.41 s stance) and mouse 16's 305-349 (0.45 s, 0.34 s stance)
    assert (good["found_n"] - good["reference_n"]).to_dict() == {14: 0, 15: 1, 16: 1, 17: 0}


def test_mouse_18_annotation_is_offset_from_its_tracks(runs):
    # Mouse 18's annotated swing onsets (frames 144, 175, 202) fall where its hind paw is standing still in the
    # DLC tracks (stances found 135-153, 167-186, 198-220): the annotation, not the detector, is off by 10-19
    # frames, so it is reported, not asserted as agreement.
    analysis, original, _ = runs[18]
    st = analysis.stances[(analysis.stances["paw"] == "hind") & analysis.stances["complete"]]
    for start in _reference(original)["start_frame"]:
        assert ((st["start_frame"] <= start) & (start <= st["end_frame"])).any(), start


def test_joint_angles_match_autogaita_frame_by_frame(runs):
    for mouse, (analysis, original, _) in runs.items():
        frames = np.concatenate([b["frame"].to_numpy() for b in original])
        for name, col in ANGLE_COLUMNS.items():
            ref = np.concatenate([b[col].to_numpy(float) for b in original])
            mine = analysis.angles[f"{name}_angle_deg"].to_numpy()[frames]
            d = np.abs(mine - ref)
            # low-confidence frames are untracked (NaN) here; AutoGaitA keeps them
            assert np.isfinite(d).mean() >= 0.95, (mouse, name)
            if mouse in (16, 17):
                # walking right to left: AutoGaitA takes these angles from its flipped, converted coordinates (x
                # mirrored, y moved frame by frame with the tracked beam), not from the pixels: a few degrees off
                assert np.nanmedian(d) <= 5.0, (mouse, name, np.nanmedian(d))
            else:
                assert np.nanmedian(d) <= 1e-6, (mouse, name, np.nanmedian(d))


def test_normalisation_matches_autogaita_bins(runs):
    for mouse, (_, original, normalised) in runs.items():
        assert len(original) == len(normalised)
        for o, nrm in zip(original, normalised, strict=True):
            assert len(nrm) == 25
            got = normalise_cycle(o["Ankle Angle"].to_numpy(float), 25)
            np.testing.assert_allclose(got, nrm["Ankle Angle"].to_numpy(float), atol=1e-6, err_msg=str(mouse))


def test_angle_curves_are_tabled_per_bin(runs):
    analysis, _, _ = runs[14]
    c = analysis.angle_curves
    hind = c[c["limb"] == "hind"]
    assert set(hind["angle"]) == {"ankle", "knee", "hip"} and len(hind) == 3 * 25
    assert np.isfinite(hind["mean_deg"]).all() and (hind["cycles_n"] >= 4).all()
    assert ((hind["mean_deg"] > 0) & (hind["mean_deg"] < 180)).all()


def test_angle_curves_agree_with_autogaita_average_stepcycle(runs, shared_data):
    # AutoGaitA's Average Stepcycle: each angle's mean over its (human) cycles in 25 bins. Over those cycles our
    # angles reproduce it; over the cycles we find ourselves (more of them, other edges) the shape agrees.
    lines = []
    for mouse, (analysis, original, _) in runs.items():
        _, orig_path, _ = run_files(shared_data, mouse, dict(RUNS)[mouse])
        avg = read_xlsx_rows(orig_path.parent / orig_path.name.replace("Original Stepcycles", "Average Stepcycle"))
        col_of = {str(v): k for k, v in avg[0].items()}
        for name, col in ANGLE_COLUMNS.items():
            ref = np.array([r[col_of[col]] for r in avg[1:26]], float)
            series = analysis.angles[f"{name}_angle_deg"].to_numpy()
            theirs = np.nanmean(
                [normalise_cycle(series[b["frame"].iloc[0] : b["frame"].iloc[-1] + 1], 25) for b in original], axis=0
            )
            rms_theirs = float(np.sqrt(np.nanmean((theirs - ref) ** 2)))
            mine = analysis.angle_curves.loc[analysis.angle_curves["angle"] == name, "mean_deg"].to_numpy()
            rms_mine = float(np.sqrt(np.mean((mine - ref) ** 2)))
            corr = float(np.corrcoef(mine, ref)[0, 1])
            lines.append(
                f"{mouse} {name}: on AutoGaitA's cycles rms {rms_theirs:.2f} deg; ours rms {rms_mine:.1f}, r {corr:.2f}"
            )
            assert rms_theirs <= (5.0 if mouse in (16, 17) else 1.5), lines[-1]
            if mouse != 18 and name != "ankle":
                assert corr >= 0.75 and rms_mine <= 11.0, lines[-1]
    print("\n" + "\n".join(lines))
