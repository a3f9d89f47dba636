"""Session metadata: the Session model, manifests with row-numbered errors, sidecars and events."""

from __future__ import annotations

import json

import pytest

from behavior.session import (
    Event,
    ManifestError,
    Session,
    read_events,
    read_manifest,
    read_session_sidecar,
    write_events,
    write_session_sidecar,
)

HEADER = "session_id,animal_id,group,timepoint,assay,side,video,fps,px_per_mm,events\n"


@pytest.fixture
def study(tmp_path):
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"\x00")  # existence is all the manifest checks
    (tmp_path / "a.events.csv").write_text(
        "time_s,kind,side,intensity\n1.5,stimulus_on,left,\n4.0,stimulus_on,right,\n"
    )
    return tmp_path


def write_manifest(folder, rows: list[str], header: str = HEADER):
    path = folder / "manifest.csv"
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


def test_valid_manifest_resolves_paths_and_reads_events(study):
    path = write_manifest(
        study,
        [
            "s1,12,CCI,baseline,hargreaves,left,a.mp4,30,8.5,a.events.csv",
            "s2,12,CCI,7,von_frey,left,b.mp4,30,,",
        ],
    )
    sessions = read_manifest(path)
    assert [s.session_id for s in sessions] == ["s1", "s2"]
    assert sessions[0].video == (study / "a.mp4").resolve()
    assert sessions[0].animal_id == "12" and sessions[1].timepoint == "7"  # numbers kept as text
    assert sessions[0].px_per_mm == 8.5 and sessions[1].px_per_mm is None
    events = sessions[0].events_frame()
    assert events["time_s"].tolist() == [1.5, 4.0]
    assert events["side"].tolist() == ["left", "right"]
    assert sessions[0].domain == "evoked"


def test_every_bad_row_is_reported_with_its_line_number(study):
    path = write_manifest(
        study,
        [
            "s1,1,CCI,baseline,hargreaves,left,a.mp4,30,,",  # line 2: fine
            "s2,1,CCI,baseline,von_fry,left,a.mp4,30,,",  # line 3: typo in assay
            "s3,1,CCI,baseline,hargreaves,left,missing.mp4,30,,",  # line 4: missing video
            "s4,1,CCI,baseline,hargreaves,left,a.mp4,0,,",  # line 5: fps 0
            "s1,1,CCI,baseline,hargreaves,left,b.mp4,30,,",  # line 6: duplicate id
            "s6,1,CCI,baseline,hargreaves,up,b.mp4,30,,",  # line 7: bad side
            "s7,1,CCI,baseline,hargreaves,left,b.mp4,30,,nope.csv",  # line 8: missing events file
        ],
    )
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    msg = str(info.value)
    assert "line 2:" not in msg
    assert "line 3: assay: unknown assay 'von_fry'" in msg
    assert "line 4:" in msg and "missing.mp4" in msg
    assert "line 5: fps: Input should be greater than 0" in msg
    assert "line 6: duplicate session_id 's1' (first on line 2)" in msg
    assert "line 7: side:" in msg
    assert "line 8: events file not found" in msg
    assert "\n" not in msg  # one line, for the CLI


def test_unknown_and_missing_columns_fail_before_rows(study):
    header = "session_id,animal,group,timepoint,assay,video,fps\n"
    path = write_manifest(study, ["s1,1,CCI,baseline,hargreaves,a.mp4,30"], header=header)
    expected = r"line 1: unknown column\(s\) \['animal'\].*missing column\(s\) \['animal_id'\]"
    with pytest.raises(ManifestError, match=expected):
        read_manifest(path)


def test_empty_manifest_and_no_input_file(study):
    with pytest.raises(ManifestError, match="at least one session row"):
        read_manifest(write_manifest(study, []))
    with pytest.raises(ManifestError, match="expected a video or a pose file"):
        read_manifest(write_manifest(study, ["s1,1,CCI,baseline,hargreaves,left,,30,,"]))
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        read_manifest(study / "nope.csv")


def test_events_csv_and_json_with_row_errors(tmp_path):
    good = [Event(time_s=2.0, kind="stimulus_on", side="left", intensity=1.4), Event(time_s=0.5, kind="light_on")]
    for suffix in (".csv", ".json"):
        path = write_events(good, tmp_path / f"ev{suffix}")
        assert read_events(path) == sorted(good, key=lambda e: e.time_s) if suffix == ".csv" else good
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,kind\n1.0,stimulus_on\n-2,stimulus_on\nabc,light_on\n")
    with pytest.raises(ManifestError) as info:
        read_events(bad)
    assert "row 3: time_s: Input should be greater than or equal to 0" in str(info.value)
    assert "row 4: time_s" in str(info.value)
    typo = tmp_path / "typo.csv"
    typo.write_text("time,kind\n1,stimulus_on\n")
    with pytest.raises(ManifestError, match="expected columns time_s,kind"):
        read_events(typo)
    (tmp_path / "bad.json").write_text('[{"time_s": 1, "kind": "x", "colour": "red"}]')
    with pytest.raises(ManifestError, match="event 1: colour: Extra inputs are not permitted"):
        read_events(tmp_path / "bad.json")


def test_sidecar_round_trip_with_inline_events(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"\x00")
    session = Session(
        session_id="rig1-0001",
        animal_id="m3",
        group="CCI",
        timepoint="d7",
        assay="hargreaves",
        side="right",
        fps=30,
        video=tmp_path / "clip.mp4",
        events=[Event(time_s=1.0, kind="stimulus_on", side="right")],
    )
    sidecar = write_session_sidecar(session, tmp_path / "clip.json")
    assert json.loads(sidecar.read_text())["video"] == "clip.mp4"  # relative: the folder can move
    back = read_session_sidecar(sidecar)
    assert back == session.model_copy(update={"video": (tmp_path / "clip.mp4").resolve()})


def test_sidecar_finds_its_video_by_stem_and_rejects_typos(tmp_path):
    (tmp_path / "rec.mp4").write_bytes(b"\x00")
    (tmp_path / "rec.json").write_text(
        json.dumps(
            {"session_id": "r", "animal_id": "a", "group": "g", "timepoint": "t", "assay": "hargreaves", "fps": 60}
        )
    )
    assert read_session_sidecar(tmp_path / "rec.json").video == (tmp_path / "rec.mp4").resolve()
    (tmp_path / "typo.json").write_text(
        json.dumps(
            {
                "session_id": "r",
                "animal_id": "a",
                "group": "g",
                "timepoint": "t",
                "assay": "hargreaves",
                "fsp": 60,
                "video": "rec.mp4",
            }
        )
    )
    with pytest.raises(ManifestError, match="fps: Field required; fsp: Extra inputs are not permitted"):
        read_session_sidecar(tmp_path / "typo.json")


def test_a_session_names_its_chamber_with_roi(study, tmp_path):
    header = HEADER.rstrip("\n") + ",roi\n"
    rows = [
        's1,r1,CCI,baseline,hargreaves,left,a.mp4,15,3,a.events.csv,"0,0,160,120"',
        "s2,r2,CCI,baseline,hargreaves,left,a.mp4,15,3,a.events.csv,",
    ]
    s1, s2 = read_manifest(write_manifest(study, rows, header))
    assert s1.roi == (0, 0, 160, 120) and s2.roi is None
    bad = [
        'b1,r1,CCI,baseline,hargreaves,left,a.mp4,15,3,a.events.csv,"0,0,160.5,120"',
        'b2,r1,CCI,baseline,hargreaves,left,a.mp4,15,3,a.events.csv,"0,0,0,120"',
        'b3,r1,CCI,baseline,hargreaves,left,a.mp4,15,3,a.events.csv,"-1,0,16,12"',
        'b4,r1,CCI,baseline,hargreaves,left,a.mp4,15,3,a.events.csv,"0,0,16"',
    ]
    with pytest.raises(ManifestError) as err:
        read_manifest(write_manifest(study, bad, header))
    text = str(err.value)
    for line in (2, 3, 4, 5):
        assert f"line {line}: roi: expected a region x,y,w,h" in text
    # a sidecar keeps it, as a list or as text
    path = write_session_sidecar(s1, study / "s1.json")
    assert json.loads(path.read_text())["roi"] == [0, 0, 160, 120]
    assert read_session_sidecar(path).roi == (0, 0, 160, 120)
    data = {**json.loads(path.read_text()), "roi": "10,0,16,12"}
    path.write_text(json.dumps(data))
    assert read_session_sidecar(path).roi == (10, 0, 16, 12)


def test_the_roi_is_in_the_cache_key_and_a_session_without_one_keeps_its_key(study):
    from behavior.pipeline import session_key

    (s1,) = read_manifest(write_manifest(study, ["s1,r1,CCI,baseline,hargreaves,left,a.mp4,15,3,a.events.csv"]))
    assert "roi" not in s1.model_dump(mode="json", exclude_none=True)
    keys = {session_key(s1.model_copy(update={"roi": r})) for r in (None, (0, 0, 160, 120), (160, 0, 160, 120))}
    assert len(keys) == 3
