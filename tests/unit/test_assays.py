"""The assay registry's study-wide config overrides: which assay each reaches, and typos refused up front."""

from __future__ import annotations

import pytest

from behavior.assays import AssayConfigError, check_overrides, get_assay


def test_overrides_reach_the_assays_whose_config_has_the_key_or_that_they_name():
    study = ["withdrawal.min_confidence=0.3", "hargreaves.cutoff_s=12", "burrowing.sample_interval_s=5"]
    assert get_assay("hargreaves").applicable_overrides(study) == ["withdrawal.min_confidence=0.3", "cutoff_s=12"]
    assert get_assay("von_frey").applicable_overrides(study) == ["withdrawal.min_confidence=0.3"]
    assert get_assay("burrowing").applicable_overrides(study) == ["sample_interval_s=5"]
    config = get_assay("hargreaves").load_config(get_assay("hargreaves").applicable_overrides(study))
    assert config.cutoff_s == 12 and config.withdrawal.min_confidence == 0.3
    check_overrides(study, ["hargreaves", "von_frey", "burrowing"])  # every one reaches an assay


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("cutof_s=3", "matches no setting of the study's assays (hargreaves, burrowing)"),
        ("von_frey.series=chaplan8", "matches no setting"),  # an assay the study does not have
        ("withdrawal.noise_factr=3", "withdrawal.noise_factr: Extra inputs"),
        ("hargreaves.cutoff_s=-1", "cutoff_s"),
    ],
)
def test_an_override_that_reaches_nothing_or_breaks_a_config_fails_before_any_work(override, fragment):
    with pytest.raises(AssayConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        check_overrides([override], ["hargreaves", "burrowing"])


def test_threads_asking_for_the_registry_while_it_loads_all_get_all_of_it():
    # a fresh service's request threads asked at once: the first set "loaded" and began importing, the
    # others got the assays imported so far, and a valid upload could be refused as an unknown assay
    import json
    import subprocess
    import sys

    code = (
        "import json, threading\n"
        "from behavior.assays import registered_assays\n"
        "sizes = []\n"
        "start = threading.Barrier(8)\n"
        "def ask():\n"
        "    start.wait()\n"
        "    sizes.append(len(registered_assays()))\n"
        "threads = [threading.Thread(target=ask) for _ in range(8)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(json.dumps(sorted(sizes)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    sizes = json.loads(out)
    from behavior.assays import registered_assays

    assert sizes == [len(registered_assays())] * 8
