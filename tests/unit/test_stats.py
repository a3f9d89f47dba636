"""Group x time statistics: effect sizes, Holm, the mixed model's interaction test, AUC, null rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from behavior.battery import BatteryConfig, battery_table, completeness
from behavior.stats import (
    TimepointError,
    analyse_measure,
    auc_per_animal,
    change_from_baseline,
    hedges_g,
    holm,
    mixed_model_interaction,
    timepoint_days,
    timepoint_order,
)

GROUPS = ("Control", "CCI", "CCI+MSC")
TIMEPOINTS = ("baseline", "d7", "d14")


def simulate(effect: float, n_per_group: int = 8, seed: int = 0, sd_animal: float = 1.0, sd_noise: float = 1.0):
    """Values with a random animal intercept; CCI drops by ``effect`` after baseline, CCI+MSC by half of it."""
    rng = np.random.default_rng(seed)
    rows = []
    for group in GROUPS:
        scale = {"Control": 0.0, "CCI": 1.0, "CCI+MSC": 0.5}[group]
        for a in range(n_per_group):
            animal = f"{group}-{a}"
            intercept = rng.normal(10, sd_animal)
            for tp in TIMEPOINTS:
                drop = effect * scale if tp != "baseline" else 0.0
                rows.append(
                    {
                        "animal_id": animal,
                        "group": group,
                        "timepoint": tp,
                        "value": intercept - drop + rng.normal(0, sd_noise),
                    }
                )
    return pd.DataFrame(rows)


def test_hedges_g_matches_a_hand_calculation():
    g, lo, hi = hedges_g([1, 2, 3], [4, 5, 6])
    assert g == pytest.approx(-3 * (1 - 3 / 15))  # d = -3 (pooled SD 1), J = 1 - 3/(4*6-9)
    se = np.sqrt(6 / 9 + g**2 / 12)
    assert (lo, hi) == pytest.approx((g - 1.96 * se, g + 1.96 * se))
    assert np.isnan(hedges_g([1], [2, 3])[0])


def test_holm_step_down():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, np.nan, 0.001]), [0.5, np.nan, 0.002])


def test_timepoints_sort_by_day():
    assert timepoint_order(["d14", "baseline", "d7", "day 3"]) == ["baseline", "day 3", "d7", "d14"]
    assert timepoint_days("D10") == 10 and timepoint_days("baseline") == 0


def test_change_from_baseline_and_auc():
    df = pd.DataFrame(
        {"animal_id": ["a"] * 3, "group": ["g"] * 3, "timepoint": list(TIMEPOINTS), "value": [5.0, 12.0, 19.0]}
    )
    assert change_from_baseline(df, "baseline")["change"].tolist() == [0.0, 7.0, 14.0]
    assert auc_per_animal(df, "baseline")["auc"].iloc[0] == pytest.approx(0.5 * 7 * 7 + 0.5 * (7 + 14) * 7)


def test_mixed_model_finds_a_planted_interaction():
    result = mixed_model_interaction(simulate(effect=3.0, seed=1))
    assert result["df"] == 4  # (3 groups - 1) x (3 timepoints - 1)
    assert result["p"] < 1e-4


def test_null_studies_reject_at_about_the_nominal_rate():
    p = np.array([mixed_model_interaction(simulate(effect=0.0, seed=s))["p"] for s in range(40)])
    assert np.isfinite(p).all()
    assert (p < 0.05).mean() <= 0.15  # expected 0.05; ML likelihood-ratio tests run a little liberal


def test_pairwise_recovers_direction_and_holm_is_never_below_p():
    stats = analyse_measure(simulate(effect=4.0, seed=2), "latency_ipsi_s")
    pair = stats[(stats["analysis"] == "pairwise") & (stats["timepoint"] == "d7")]
    cci_vs_control = pair[(pair["group_a"] == "CCI") & (pair["group_b"] == "Control")].iloc[0]
    assert cci_vs_control["difference"] < -2 and cci_vs_control["hedges_g"] < -1 and cci_vs_control["significant"]
    base = stats[(stats["analysis"] == "pairwise") & (stats["timepoint"] == "baseline")]
    assert not base["significant"].any()
    assert (
        stats.loc[stats["analysis"] == "pairwise", "p_holm"] >= stats.loc[stats["analysis"] == "pairwise", "p"]
    ).all()
    auc = stats[stats["analysis"] == "auc_pairwise"]
    assert len(auc) == 3


def _measures(pairs):
    df = simulate(effect=2.0, n_per_group=2)
    frames = [df.assign(measure=m, domain=d, session_id="s", assay="x", unit="s", n=1, quality="ok") for m, d in pairs]
    return pd.concat(frames)


def test_battery_pivot_orders_columns_by_domain_and_warns_about_missing_domains():
    config = BatteryConfig.load("default")
    # an unlisted affective measure first, a listed evoked one second: evoked columns still come first
    measures = _measures([("freezing_s", "affective"), ("latency_ipsi_s", "evoked")])
    table = battery_table(measures, config)
    assert table.columns.tolist() == [
        "animal_id",
        "group",
        "timepoint",
        "evoked.latency_ipsi_s",
        "affective.freezing_s",
    ]
    assert len(table) == 3 * 2 * 3  # groups x animals x timepoints, no crossed empty rows
    assert table["timepoint"].tolist()[:3] == ["baseline", "d7", "d14"]
    first = measures[(measures["animal_id"] == table["animal_id"][0]) & (measures["timepoint"] == "baseline")]
    assert table["evoked.latency_ipsi_s"][0] == first.loc[first["measure"] == "latency_ipsi_s", "value"].iloc[0]
    warnings = completeness(measures)
    assert len(warnings) == 1 and "no spontaneous measure" in warnings[0]
    full = _measures([("a", "evoked"), ("b", "spontaneous"), ("c", "affective")])
    assert completeness(full) == []


def test_report_unblinds_only_in_the_html(tmp_path):
    from behavior.report import read_unblind_key, write_outputs

    df = simulate(effect=2.0, n_per_group=3, seed=7)
    codes = {"Control": "G1", "CCI": "G2", "CCI+MSC": "G3"}
    coded = df.assign(
        group=df["group"].map(codes),
        session_id="s",
        assay="hargreaves",
        domain="evoked",
        measure="latency_ipsi_s",
        unit="s",
        n=1,
        quality="ok",
    )
    key = tmp_path / "key.csv"
    key.write_text("code,group\nG1,Control\nG2,CCI\nG3,CCI+MSC\n")
    no_failures = pd.DataFrame(columns=["session_id", "assay", "error"])
    paths = write_outputs(tmp_path / "out", coded, pd.DataFrame(), no_failures, unblind=read_unblind_key(key))
    html = paths["report"].read_text()
    assert "CCI+MSC" in html and "shown unblinded" in html
    assert set(pd.read_csv(paths["battery"])["group"]) == {"G1", "G2", "G3"}  # tables keep the codes
    change = pd.read_csv(paths["change"])
    assert (change.loc[change["timepoint"] == "baseline", "change"] == 0).all()
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name\nG1,x\n")
    with pytest.raises(ValueError, match="expected columns code,group"):
        read_unblind_key(bad)


# ------------------------------------------------------------------------------------------ issue 11


def test_animal_ids_reused_across_groups_are_different_animals():
    # issue 11, defect 5: labs number animals 1-n in each group; the same values with unique ids must
    # give the same interaction test, and change from baseline must not crash (InvalidIndexError)
    # (merging ids 0-3 across groups gave p = 0.65 instead of 0.00014 on these values)
    unique = simulate(effect=2.0, n_per_group=4, seed=0, sd_animal=3.0)
    reused = unique.assign(animal_id=unique["animal_id"].str.split("-").str[1])
    assert reused.groupby("animal_id")["group"].nunique().max() == 3  # each id sits in all three groups
    p_unique = mixed_model_interaction(unique)["p"]
    p_reused = mixed_model_interaction(reused)["p"]
    assert p_reused == pytest.approx(p_unique, rel=1e-6) and p_reused < 0.001
    change = change_from_baseline(reused, "baseline")
    expected = change_from_baseline(unique, "baseline")["change"].to_numpy()
    np.testing.assert_allclose(change["change"].to_numpy(), expected)
    auc_u = auc_per_animal(unique, "baseline")["auc"].to_numpy()
    np.testing.assert_allclose(auc_per_animal(reused, "baseline")["auc"].to_numpy(), auc_u)


def test_hour_and_week_timepoints_are_placed_in_time():
    # issue 11, defect 6: today ['baseline','4h','24h','d3','d7'] ordered baseline, d3, 4h, d7, 24h
    assert timepoint_order(["d7", "24h", "baseline", "d3", "4h"]) == ["baseline", "4h", "24h", "d3", "d7"]
    assert timepoint_days("wk2") == 14 and timepoint_days("4h") == pytest.approx(1 / 6)
    assert timepoint_days("day 7") == 7 and timepoint_days("3") == 3 and timepoint_days("2 weeks") == 14
    assert timepoint_order(["wk2", "d3", "Baseline"]) == ["Baseline", "d3", "wk2"]
    with pytest.raises(TimepointError, match=r"\['post-op'\]"):
        timepoint_order(["baseline", "post-op", "d3"])
    with pytest.raises(TimepointError, match="'3m'"):
        timepoint_days("3m")


def test_baseline_label_matches_in_any_case_everywhere():
    # issue 11, defect 6: 'Baseline' in the data against the config's 'baseline' emptied AUC and change
    df = pd.DataFrame(
        {"animal_id": ["a"] * 3, "group": ["g"] * 3, "timepoint": ["Baseline", "d7", "d14"], "value": [5.0, 12.0, 19.0]}
    )
    assert change_from_baseline(df, "baseline")["change"].tolist() == [0.0, 7.0, 14.0]
    assert auc_per_animal(df, "baseline")["auc"].iloc[0] == pytest.approx(0.5 * 7 * 7 + 0.5 * (7 + 14) * 7)
    stats = analyse_measure(simulate(effect=3.0, seed=4).replace({"timepoint": {"baseline": "Baseline"}}), "m")
    assert (stats["analysis"] == "auc_pairwise").sum() == 3


def test_auc_uses_the_study_timepoints_and_leaves_out_an_animal_missing_one():
    # issue 11, defect 7: identical curves gave 14.5 and 6.5 when one animal lacked d15
    rows = []
    for animal in ("a", "b"):
        for tp, v in (("baseline", 10.0), ("d1", 11.0), ("d7", 11.0), ("d15", 11.0)):
            if not (animal == "b" and tp == "d15"):
                rows.append({"animal_id": animal, "group": "g", "timepoint": tp, "value": v})
    auc = auc_per_animal(pd.DataFrame(rows), "baseline").set_index("animal_id")
    assert auc.loc["a", "auc"] == pytest.approx(14.5)  # 0.5 * 1 + 6 + 8, on the days axis
    assert np.isnan(auc.loc["b", "auc"]) and auc.loc["b", "missing"] == "d15"
    hours = pd.DataFrame(rows).replace({"timepoint": {"d1": "24h"}})
    assert auc_per_animal(hours, "baseline").set_index("animal_id").loc["a", "auc"] == pytest.approx(14.5)


def test_auc_comparison_counts_animals_left_out():
    df = simulate(effect=3.0, seed=5)
    dropped = df[~((df["animal_id"] == "CCI-0") & (df["timepoint"] == "d14"))]
    stats = analyse_measure(dropped, "m")
    auc = stats[stats["analysis"] == "auc_pairwise"]
    assert auc["note"].str.contains("1 animal\\(s\\) missing a timepoint left out: CCI/CCI-0 \\(no d14\\)").all()
    assert auc.loc[auc["group_a"] == "CCI", "n_a"].iloc[0] == 7


def test_holm_family_is_every_timepoint_by_pair_test_of_a_measure():
    # issue 11, defect 8: with two groups Holm within each timepoint left p_holm == p everywhere
    two = simulate(effect=3.0, seed=6)
    two = two[two["group"] != "CCI+MSC"]
    stats = analyse_measure(two, "m")
    pair = stats[stats["analysis"] == "pairwise"]
    assert len(pair) == 3
    np.testing.assert_allclose(pair["p_holm"].to_numpy(), holm(pair["p"].to_numpy()))
    smallest = pair["p"].idxmin()
    assert pair.loc[smallest, "p_holm"] == pytest.approx(min(1.0, 3 * pair.loc[smallest, "p"]))
    three = analyse_measure(simulate(effect=3.0, seed=6), "m")
    pair3 = three[three["analysis"] == "pairwise"]
    np.testing.assert_allclose(pair3["p_holm"].to_numpy(), holm(pair3["p"].to_numpy()))  # 3 x 3 = 9 tests


def test_a_group_with_no_spread_gets_a_welch_test_without_warnings():
    """Four animals at a ceiling (100 %) against a group with spread: scipy warned of 'precision loss'
    in the demo's output although Welch's test is defined; the p-value must equal Welch's by hand."""
    import warnings

    from behavior.stats import pairwise_by_timepoint

    a, b = [100.0, 100.0, 100.0, 100.0], [100.0, 100.0, 100.0, 88.43117554]
    df = pd.DataFrame(
        {"group": ["A"] * 4 + ["B"] * 4, "timepoint": "d7", "animal_id": [f"x{i}" for i in range(8)], "value": a + b}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (row,) = pairwise_by_timepoint(df, ["A", "B"], ["d7"])
    se = np.sqrt(np.var(b, ddof=1) / 4)
    t = (np.mean(a) - np.mean(b)) / se
    assert row["statistic"] == pytest.approx(t) and row["df"] == pytest.approx(3.0)
    assert row["note"] == "Welch t-test" and 0 < row["p"] < 1
