"""The study report: control group through the blinding key, measure directions, trial counts, methods."""

from __future__ import annotations

import re
from html import unescape

import matplotlib.axes
import numpy as np
import pandas as pd
import pytest

from behavior.battery import BatteryConfig
from behavior.report import trial_counts_table, write_outputs
from behavior.stats import HOLM_FAMILY

CODES = {"Control": "G1", "CCI": "G2"}
NO_FAILURES = pd.DataFrame(columns=["session_id", "assay", "error"])


def _study(measure: str = "latency_ipsi_s", assay: str = "hargreaves") -> pd.DataFrame:
    """Two groups of four, CCI far below Control after baseline (values in seconds)."""
    rng = np.random.default_rng(0)
    rows = []
    for group, drop in (("Control", 0.0), ("CCI", 6.0)):
        for a in range(1, 5):  # animals numbered 1-4 in each group, as labs do
            for tp in ("baseline", "d7", "d14"):
                value = 12.0 + rng.normal(0, 0.5) - (drop if tp != "baseline" else 0.0)
                rows.append(
                    {
                        "session_id": f"{group}-{a}-{tp}".replace("+", ""),
                        "animal_id": str(a),
                        "group": group,
                        "timepoint": tp,
                        "assay": assay,
                        "domain": "evoked",
                        "measure": measure,
                        "value": value,
                        "unit": "s",
                        "n": 3,
                        "quality": "ok",
                    }
                )
    return pd.DataFrame(rows)


def _stars(monkeypatch) -> list[str]:
    drawn: list[str] = []
    real = matplotlib.axes.Axes.text

    def spy(self, x, y, s, *args, **kwargs):
        if set(str(s)) == {"*"}:
            drawn.append(str(s))
        return real(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "text", spy)
    return drawn


def test_unblinded_report_finds_the_control_group_through_the_key(tmp_path, monkeypatch):
    # issue 11, defect 9a: the config's 'Control' was compared with the codes, so with --unblind no
    # stars were drawn (while the caption said "comparison with Control") and the heatmap used all animals
    coded = _study().replace({"group": CODES})
    key = {code: group for group, code in CODES.items()}
    assert BatteryConfig.load("default").control_in(["G1", "G2"], key) == "G1"
    drawn = _stars(monkeypatch)
    html = write_outputs(tmp_path / "out", coded, pd.DataFrame(), NO_FAILURES, unblind=key)["report"].read_text()
    assert drawn.count("***") == 2  # CCI vs Control at d7 and d14
    assert "Stars: pairwise comparison with Control" in html
    assert "z-score against Control animals at baseline" in html
    assert html.count('<td class="l">Control vs CCI</td>') == 4  # three timepoints and the AUC


def test_no_control_group_means_no_stars_and_says_so(tmp_path, monkeypatch):
    coded = _study().replace({"group": {"Control": "Sham", "CCI": "CCI"}})
    drawn = _stars(monkeypatch)
    html = write_outputs(tmp_path / "out", coded, pd.DataFrame(), NO_FAILURES)["report"].read_text()
    assert drawn == [] and "No stars: the control group (Control) is not among the groups" in html


def test_unlisted_measures_get_their_family_direction_or_none():
    # issue 11, defect 9b: latency_left_s (a session without side) defaulted to "higher = more pain"
    config = BatteryConfig.load("default")
    assert config.direction("latency_left_s") == -1 and config.direction("threshold_right_g") == -1
    assert config.direction("latency_ipsi_s") == -1 and config.direction("post_n_shakes") == 1
    assert config.direction("freezing_s") is None


def test_heatmap_draws_long_latencies_blue_and_leaves_unknown_directions_uncoloured(tmp_path, monkeypatch):
    images = []
    real = matplotlib.axes.Axes.imshow
    monkeypatch.setattr(
        matplotlib.axes.Axes, "imshow", lambda self, X, *a, **k: images.append(np.asarray(X)) or real(self, X, *a, **k)
    )
    measures = pd.concat([_study("latency_left_s"), _study("freezing_s", assay="place_preference")])
    html = write_outputs(tmp_path / "out", measures, pd.DataFrame(), NO_FAILURES)["report"].read_text()
    battery = pd.read_csv(tmp_path / "out" / "battery.csv")
    (z,) = images
    cols = [c for c in battery.columns if "." in c]
    lat, freeze = z[:, cols.index("evoked.latency_left_s")], z[:, cols.index("evoked.freezing_s")]
    cci_late = ((battery["group"] == "CCI") & (battery["timepoint"] != "baseline")).to_numpy()
    assert (lat[cci_late] > 2).all()  # CCI's shorter latencies are more pain-like (red), not blue
    assert np.isnan(freeze).all() and "Not coloured" in html and "freezing_s" in html


def test_data_quality_table_counts_trials_per_measure_and_methods_say_what_is_corrected(tmp_path):
    measures = _study()
    quality = pd.DataFrame(
        [
            {
                "session_id": sid,
                "assay": "hargreaves",
                "frames": 100,
                "missing_point_fraction": 0.0,
                "low_confidence_fraction": 0.0,
                "trial_counts": [
                    {"measure": "latency_ipsi_s", "trials": 3, "responded": 1, "censored": 1, "no_baseline": 0}
                    | {"recording_ended": 1, "untracked": i % 2}
                ],
            }
            for i, sid in enumerate(measures["session_id"])
        ]
    )
    paths = write_outputs(tmp_path / "out", measures, quality, NO_FAILURES)
    counts = pd.read_csv(paths["trial_counts"])
    assert len(counts) == 24 and counts["recording_ended"].sum() == 24 and counts["untracked"].sum() == 12
    assert "trial_counts" not in pd.read_csv(paths["quality"]).columns
    html = unescape(paths["report"].read_text())
    row = re.sub(r"\s+", "", html)
    assert (
        '<tdclass="l">latency_ipsi_s</td><td>24</td><td>72</td><td>24</td><td>24</td><td>0</td><td>24</td><td>12</td>'
        in row
    )
    assert HOLM_FAMILY in html
    assert "left out of the mean and counted per measure" in html and "enters the paw's mean at the cut-off" in html
    assert trial_counts_table(pd.DataFrame()).empty


@pytest.mark.parametrize("label", ["Baseline", "BASELINE"])
def test_heatmap_reference_matches_the_baseline_label_in_any_case(tmp_path, label):
    measures = _study().replace({"timepoint": {"baseline": label}})
    html = write_outputs(tmp_path / "out", measures, pd.DataFrame(), NO_FAILURES)["report"].read_text()
    assert "z-score against Control animals at baseline" in html
    change = pd.read_csv(tmp_path / "out" / "change_from_baseline.csv")
    assert len(change) == 24 and (change.loc[change["timepoint"] == label, "change"] == 0).all()


def test_two_worker_processes_give_the_same_statistics_and_report(tmp_path):
    """Fits and figures spread over spawned processes come back in order and unchanged."""
    measures = pd.concat([_study("latency_ipsi_s"), _study("latency_contra_s"), _study("withdrawal_count")])
    measures.loc[measures["measure"] == "latency_contra_s", "value"] *= 0.5  # measures differ from each other
    one = write_outputs(tmp_path / "one", measures, pd.DataFrame(), NO_FAILURES)
    two = write_outputs(tmp_path / "two", measures, pd.DataFrame(), NO_FAILURES, n_jobs=2)
    stats_one, stats_two = pd.read_csv(one["stats"]), pd.read_csv(two["stats"])
    assert stats_one["measure"].nunique() == 3
    pd.testing.assert_frame_equal(stats_one, stats_two)
    strip = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")  # the minute the report was made
    assert strip.search(one["report"].read_text())  # the comparison strips something
    html_one, html_two = (strip.sub("", p["report"].read_text()) for p in (one, two))
    assert html_one.count("data:image/png") >= 3 and html_one == html_two
