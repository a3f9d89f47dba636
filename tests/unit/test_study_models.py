"""Pose models per assay in one study: ``--model ASSAY=DIR``, the manifest's ``model`` column, the cache key.

A study may film paws with a bottom camera and faces with a face camera, so each assay's sessions take
the study's model for that assay unless a session names its own; and scoring the same study again with
another model must score it again, not return what the first model gave from the cache.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from behavior import batch
from behavior.assays import UnknownAssayError
from behavior.cli.study import parse_models
from behavior.pipeline import MEASURES_COLUMNS, SessionResult


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A video, a pose file and three pose-model folders whose weights differ."""
    out = {"video": tmp_path / "rec.mp4", "pose": tmp_path / "rec.h5"}
    out["video"].write_bytes(b"video bytes")
    out["pose"].write_bytes(b"pose bytes")
    for name in ("paws", "face", "other", "own"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "weights.pt").write_bytes(f"weights of {name}".encode())
        out[name] = folder
    return out


@pytest.fixture
def used(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path | None]]:
    """run_session replaced by one that records the pose model each session would predict with."""
    calls: list[tuple[str, Path | None]] = []

    def fake_run_session(session, *, model=None, **kwargs):
        calls.append((session.session_id, session.model or model))
        row = {c: None for c in MEASURES_COLUMNS} | {"session_id": session.session_id, "value": 1.0}
        return SessionResult(session_id=session.session_id, measures=pd.DataFrame([row]), quality={})

    monkeypatch.setattr(batch, "run_session", fake_run_session)
    return calls


def session(sid: str, assay: str, files: dict[str, Path], **fields) -> dict:
    base = {"session_id": sid, "animal_id": "a1", "group": "G", "timepoint": "baseline", "assay": assay}
    return base | {"fps": 30.0, "video": str(files["video"])} | {k: str(v) for k, v in fields.items()}


def test_each_assay_takes_its_study_model_and_a_session_its_own(files, used, tmp_path):
    models = parse_models([f"hargreaves={files['paws']}", f"grimace={files['face']}", str(files["other"])])
    assert models == {"hargreaves": files["paws"], "grimace": files["face"], "": files["other"]}
    by_assay = {k: str(v) for k, v in models.items()}
    for sid, assay, own in (
        ("h", "hargreaves", {}),
        ("g", "grimace", {}),
        ("v", "von_frey", {}),
        ("o", "grimace", {"model": files["own"]}),
    ):
        result = batch.score_session(session(sid, assay, files, **own), str(tmp_path / "out"), model=by_assay)
        assert result["status"] == "scored", result
    assert [(sid, Path(m)) for sid, m in used] == [
        ("h", files["paws"]),
        ("g", files["face"]),
        ("v", files["other"]),  # no model for von Frey: the study's default
        ("o", files["own"]),  # the manifest's model column wins over the study's
    ]


def test_another_study_model_scores_the_session_again(files, used, tmp_path):
    # the study's model used to be left out of the cache key (only a session's own model was in it): a
    # re-run with --model hargreaves=OTHER silently returned the first model's measures from the cache
    out, data = str(tmp_path / "out"), session("h", "hargreaves", files)
    assert batch.score_session(data, out, model={"hargreaves": str(files["paws"])})["status"] == "scored"
    assert batch.score_session(data, out, model={"hargreaves": str(files["paws"])})["status"] == "cached"
    assert batch.score_session(data, out, model={"hargreaves": str(files["face"])})["status"] == "scored"
    assert batch.score_session(data, out, model=str(files["face"]))["status"] == "cached"  # the same model
    (files["face"] / "weights.pt").write_bytes(b"retrained")
    assert batch.score_session(data, out, model={"hargreaves": str(files["face"])})["status"] == "scored"
    assert len(used) == 3


def test_a_model_that_is_not_used_does_not_change_the_key(files, used, tmp_path):
    out = str(tmp_path / "out")
    posed = session("h", "hargreaves", files, pose=files["pose"])  # poses come from its file
    assert batch.score_session(posed, out, model={"hargreaves": str(files["paws"])})["status"] == "scored"
    assert batch.score_session(posed, out, model={"hargreaves": str(files["face"])})["status"] == "cached"
    assert batch.score_session(posed, out, model=None)["status"] == "cached"
    # the study's model for another assay, or any model for an assay that reads no poses, is not used either
    vf = session("v", "von_frey", files, pose=files["pose"])
    assert batch.score_session(vf, out, model={"hargreaves": str(files["paws"])})["status"] == "scored"
    assert batch.score_session(vf, out, model={"hargreaves": str(files["face"])})["status"] == "cached"


def test_the_shared_prediction_pass_skips_only_what_this_model_scored(files, used, tmp_path):
    out = tmp_path / "out"
    rows = [session(f"c{i}", "hargreaves", files) for i in range(2)]
    sessions = [batch.Session.model_validate(r) for r in rows]
    for r in rows:
        batch.score_session(r, str(out), model={"hargreaves": str(files["paws"])})
    assert batch.shared_videos(sessions, {"hargreaves": str(files["paws"])}, out) == []  # both cached
    (group,) = batch.shared_videos(sessions, {"hargreaves": str(files["face"])}, out)
    assert group["sessions"] == ["c0", "c1"] and group["model"] == str(files["face"].resolve())


def test_model_values_are_checked():
    with pytest.raises(UnknownAssayError, match="expected one of"):
        parse_models(["hargreves=/nope"])
    with pytest.raises(ValueError, match="one model per assay"):
        parse_models(["hargreaves=/a", "hargreaves=/b"])
    assert parse_models(None) is None
