"""The spine is laid out to grow (issue 12 item 6): the CLI as a package of command-group modules, the
service as routers composed by ``create_app``, and ``painbattery assays`` listing every registered assay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.cli import cli

# command (or group) -> the module of behavior/cli/ that holds it; a command moved into the root module,
# or a group whose commands are defined elsewhere, fails here
COMMAND_MODULES = {
    "info": "pose",
    "pose": "pose",
    "evoked": "evoked",
    "score": "study",
    "simulate": "study",
    "demo": "study",
    "assays": "assays",
    "serve": "service",
    "worker": "service",
    "watch": "service",
    "admin": "service",
    "burrowing": "burrowing",
    "gait": "gait",
    "place-preference": "place_preference",
    "grimace": "grimace",
    "behaviours": "behaviours",
}


def _name(command) -> str:
    return command.name or command.callback.__name__.replace("_", "-")


def test_every_command_lives_in_its_group_module():
    from behavior.cli import app

    found = {_name(c): c.callback.__module__ for c in app.registered_commands}
    for group in app.registered_groups:
        modules = {c.callback.__module__ for c in group.typer_instance.registered_commands}
        assert len(modules) == 1, (group.name, modules)
        found[group.name] = modules.pop()
    assert found == {k: f"behavior.cli.{v}" for k, v in COMMAND_MODULES.items()}


def test_the_shared_cli_pieces_live_in_one_module():
    import behavior.cli as package
    from behavior.cli import common

    for name in ("EXIT_BAD_INPUT", "progress_bar", "run_with_exit_codes", "_print_frame"):
        assert getattr(package, name) is getattr(common, name)
    assert common.EXIT_BAD_INPUT == 2
    root = Path(package.__file__)
    assert len(root.read_text().splitlines()) < 150  # the root module registers groups; it holds none


def test_the_service_is_routers_composed_by_create_app(tmp_path):
    from service.app import create_app
    from service.routers import jobs, rigs, studies, uploads, web
    from service.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "data", check_processes=1))
    areas = {m.__name__: m.router for m in (web, studies, uploads, jobs, rigs)}
    included = [getattr(r, "original_router", None) for r in app.router.routes]
    assert [r for r in included if r is not None] == list(areas.values())
    own = [r.path for r in app.router.routes if getattr(r, "original_router", None) is None]
    assert set(own) <= {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}  # no route of its own
    for module, router in areas.items():
        assert router.routes, module
        assert {r.endpoint.__module__ for r in router.routes} == {module}


def test_painbattery_assays_lists_every_registered_assay_with_its_config(capsys, monkeypatch):
    from behavior.assays import registered_assays
    from behavior.config import config_dir

    code, out, _ = cli(capsys, monkeypatch, "assays", "--json")
    assert code == 0
    rows = {r["assay"]: r for r in json.loads(out)}
    specs = registered_assays()
    assert set(rows) == set(specs) and len(specs) >= 8
    for name, spec in specs.items():
        row = rows[name]
        assert row["domain"] == spec.domain and row["inputs"] == spec.inputs()
        assert [(m["measure"], m["unit"]) for m in row["measures"]] == [(m.name, m.unit) for m in spec.measures]
        assert row["measures"], name
        assert (config_dir().parent / row["config"]).is_file(), row["config"]
    code, table, _ = cli(capsys, monkeypatch, "assays")
    assert code == 0 and "registered assays" in table  # the table (its columns wrap to the terminal)


@pytest.mark.parametrize("assay", ["hargreaves", "von_frey"])
def test_the_evoked_assays_list_their_measures_with_units(capsys, monkeypatch, assay):
    _, out, _ = cli(capsys, monkeypatch, "assays", "--json")
    row = next(r for r in json.loads(out) if r["assay"] == assay)
    assert row["domain"] == "evoked" and row["config"] == f"configs/assays/{assay}.yaml"
    assert all(m["unit"] for m in row["measures"])
