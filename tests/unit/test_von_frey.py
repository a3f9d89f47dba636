"""Up-down von Frey thresholds: Dixon's table, the Chaplan formula, bounds, SUDO, bad sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from behavior.features.dixon import DIXON_K, dixon_k, dixon_k_ml, mirror
from behavior.features.von_frey import (
    FilamentSeries,
    SequenceError,
    percent_response,
    read_updown_csv,
    sudo_threshold,
    thresholds_table,
    updown_threshold,
)

CHAPLAN_G = [0.4, 0.6, 1.0, 2.0, 4.0, 6.0, 8.0, 15.0]
CHAPLAN_MARKS = [3.61, 3.84, 4.08, 4.31, 4.56, 4.74, 4.93, 5.18]

# Published entries of Dixon's table, written out independently of the module (first part + second
# part -> k), including the one a widely shared spreadsheet gets wrong (XOOOOO is -0.893, not -0.983).
PUBLISHED = {
    "OX": -0.500,
    "OOOOX": -0.377,
    "OXO": 0.842,
    "OOXX": 0.000,
    "OXXO": 1.000,
    "OOOXOXX": 0.181,
    "OXOXOO": 0.022,
    "OXXOOX": -0.831,
    "OOOOXXXXO": 2.014,
    "OXOOOO": -0.547,
    "OXOOOX": -1.250,
    "OOXOXXO": 1.237,
    "OXXXXX": 0.893,
    "XOOOOO": -0.893,
    "XXXOXOO": -0.181,
    "OOOOXXXXX": 1.496,
}


@pytest.fixture(scope="module")
def chaplan8() -> FilamentSeries:
    return FilamentSeries.load("chaplan8")


def test_series_config_matches_chaplan(chaplan8):
    assert chaplan8.forces_g == CHAPLAN_G
    assert chaplan8.markings == CHAPLAN_MARKS
    assert chaplan8.start_g == 2.0
    assert chaplan8.delta == pytest.approx((5.18 - 3.61) / 7)
    for name in ("stoelting20", "mouse_sudo"):
        series = FilamentSeries.load(name)
        # marking = log10(10 x force in mg), to 0.12 log units over 0.4-15 g: catches a mistyped marking
        for f in series.filaments:
            if 0.4 <= f.force_g <= 15:
                assert abs(f.marking - math.log10(f.force_g * 1e4)) < 0.12


def test_table_holds_248_patterns_with_exact_mirror_symmetry():
    assert len(DIXON_K) == 248
    for pattern, k in DIXON_K.items():
        assert DIXON_K[mirror(pattern)] == -k


def test_every_table_entry_agrees_with_the_maximum_likelihood_derivation():
    """The second, independent source: Dixon's own derivation, recomputed (table is to 3 decimals)."""
    worst = max(abs(dixon_k_ml(p) - k) for p, k in DIXON_K.items())
    assert worst < 0.0006


@pytest.mark.parametrize(("pattern", "k"), sorted(PUBLISHED.items()))
def test_published_values(pattern, k):
    assert dixon_k(pattern) == pytest.approx(k, abs=1e-9)


def test_the_circulating_spreadsheet_error_is_not_in_our_table():
    assert dixon_k("XOOOOO") != pytest.approx(-0.983)
    assert dixon_k_ml("XOOOOO") == pytest.approx(-0.893, abs=5e-4)


def _walk_for(pattern: str, start: int) -> list[int]:
    idx = [start]
    for r in pattern[:-1]:
        idx.append(idx[-1] - 1 if r == "X" else idx[-1] + 1)
    return idx


@pytest.mark.parametrize("pattern", sorted(DIXON_K))
def test_threshold_equals_hand_calculation_for_every_pattern_in_the_table(chaplan8, pattern):
    """All 248 patterns: 10**(Xf + k*delta)/1e4, Xf the last filament's marking, on the 8-filament series."""
    second_part = len(pattern) - pattern.index("X" if pattern[0] == "O" else "O")
    for start in range(8):  # a start whose walk stays inside the 8 filaments
        idx = _walk_for(pattern, start)
        if min(idx) >= 0 and max(idx) <= 7:
            break
    result = updown_threshold([CHAPLAN_G[i] for i in idx], list(pattern), chaplan8, n_after_change=second_part - 1)
    k = PUBLISHED.get(pattern, DIXON_K[pattern])
    expected = min(max(10 ** (CHAPLAN_MARKS[idx[-1]] + k * (5.18 - 3.61) / 7) / 1e4, 0.25), 15.0)
    assert result.threshold_g == pytest.approx(expected, rel=1e-12)
    assert result.pattern == pattern
    assert result.last_filament_g == CHAPLAN_G[idx[-1]]
    assert ("nonstandard_start" in result.flag) == (idx[0] != 3)


def test_chaplan_worked_example(chaplan8):
    # 2 g O, 4 g X, 2 g O, 4 g O, 6 g X, 4 g X: pattern OXOOXX, last filament 4 g (4.56)
    r = updown_threshold([2, 4, 2, 4, 6, 4], "OXOOXX", chaplan8)
    assert r.k == pytest.approx(-0.169)
    assert r.threshold_g == pytest.approx(10 ** (4.56 - 0.169 * 0.224286) / 1e4, rel=1e-4)
    assert r.threshold_g == pytest.approx(3.33, abs=0.01)
    assert r.flag == ""


def test_bounded_series_are_flagged(chaplan8):
    low = updown_threshold([2, 1, 0.6, 0.4], "XXXX", chaplan8)
    assert (low.threshold_g, low.flag) == (0.25, "all_responses")
    high = updown_threshold([2, 4, 6, 8, 15], "OOOOO", chaplan8)
    assert (high.threshold_g, high.flag) == (15.0, "no_responses")
    # a walk that changes response only at the top and then keeps being held there
    held = updown_threshold([2, 4, 6, 8, 15, 8, 15, 15, 15], "OOOOXOOOO", chaplan8)
    assert "k_from_likelihood" in held.flag
    assert held.threshold_g == 15.0 and "capped_high" in held.flag


def test_extra_applications_are_ignored_but_flagged(chaplan8):
    r = updown_threshold([2, 4, 2, 4, 6, 4, 2, 1], "OXOOXXXO", chaplan8)
    assert r.pattern == "OXOOXX" and r.flag == "extra_applications_ignored"
    r = updown_threshold([4, 6, 4, 6, 4, 2], "OXOXXO", chaplan8)
    assert r.flag == "nonstandard_start"  # Chaplan starts at 2 g


@pytest.mark.parametrize(
    ("forces", "responses", "message"),
    [
        ([2, 3, 4], "OOO", "filament 3 g is not in series chaplan8"),
        ([2, 4, 2], "OXO", "too few applications: the response first changed at application 2"),
        ([2, 4, 6], "OOO", "too few applications: 3 without a change of response"),
        ([2, 4, 8], "OOX", "impossible sequence: application 3 used 8 g"),
        ([2, 1, 2], "XXO", "impossible sequence: application 3 used 2 g"),
        ([2, 4], "OZ", "expected a response X/1"),
        ([2, 4], "O", "one response per application"),
    ],
)
def test_bad_sequences_give_clear_errors(chaplan8, forces, responses, message):
    with pytest.raises(SequenceError) as info:
        updown_threshold(forces, list(responses), chaplan8)
    assert message in str(info.value)


def test_sudo_half_a_step_from_the_fifth_filament(chaplan8):
    slope, intercept = np.polyfit(np.arange(8), np.log10(CHAPLAN_G), 1)
    # 2 O -> 4 X -> 2 O -> 4 O -> 6 X : fifth filament 6 g (position 5) gave a withdrawal -> 4.5
    r = sudo_threshold([2, 4, 2, 4, 6], "OXOOX", chaplan8)
    assert r.final_position == 4.5
    assert r.threshold_g == pytest.approx(10 ** (slope * 4.5 + intercept))
    assert 4.0 < r.threshold_g < 6.0
    r = sudo_threshold([2, 1, 0.6, 0.4, 0.4], "XXXXO", chaplan8)
    assert r.final_position == 0.5
    with pytest.raises(SequenceError, match="expected 5, got 4"):
        sudo_threshold([2, 1, 0.6, 0.4], "XXXX", chaplan8)


def test_csv_table_and_percent_response(tmp_path, chaplan8):
    path = tmp_path / "responses.csv"
    rows = ["animal_id,paw,filament_g,response"]
    rows += [f"r1,left,{g},{r}" for g, r in zip([2, 4, 2, 4, 6, 4], "OXOOXX", strict=True)]
    rows += [f"r1,right,{g},{r}" for g, r in zip([2, 1, 0.6, 0.4], "1111", strict=True)]
    path.write_text("\n".join(rows) + "\n")
    table = thresholds_table(read_updown_csv(path), chaplan8)
    assert table.columns.tolist() == ["animal_id", "paw", "threshold_g", "pattern", "flag"]
    assert table["pattern"].tolist() == ["OXOOXX", "XXXX"]
    assert table["threshold_g"].tolist()[1] == 0.25
    pct = percent_response(read_updown_csv(path))
    left_4g = pct[(pct.paw == "left") & (pct.filament_g == 4.0)].iloc[0]
    assert (left_4g.n_applications, left_4g.n_responses, left_4g.response_percent) == (3, 2, pytest.approx(200 / 3))


def test_csv_errors_name_lines_and_animals(tmp_path, chaplan8):
    bad = tmp_path / "bad.csv"
    bad.write_text("animal_id,paw,filament_g,response\nr1,left,two,X\nr1,left,2,maybe\n")
    with pytest.raises(SequenceError, match="line 2: filament_g.*line 3: response"):
        read_updown_csv(bad)
    seq = tmp_path / "seq.csv"
    seq.write_text("animal_id,paw,filament_g,response\nr1,left,2,O\nr1,left,4,X\nr2,left,2,O\nr2,left,8,O\n")
    with pytest.raises(SequenceError) as info:
        thresholds_table(read_updown_csv(seq), chaplan8)
    assert "animal r1 paw left (lines 2-3): too few" in str(info.value)
    assert "animal r2 paw left (lines 4-5): impossible sequence" in str(info.value)
    no_response = tmp_path / "cols.csv"
    no_response.write_text("animal_id,paw,filament_g\nr1,left,2\n")
    with pytest.raises(SequenceError, match="missing \\['response'\\]"):
        read_updown_csv(no_response)
