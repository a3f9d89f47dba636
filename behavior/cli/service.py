"""The service side: ``painbattery serve`` (upload service), ``worker`` (job queue), ``watch`` (rig folders)
and ``admin ...`` (create-lab, create-token, create-rig).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from behavior.cli.common import console

admin_app = typer.Typer(help="Service administration: labs, tokens, rigs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``worker``, ``watch`` and the ``admin`` group to the root app."""
    app.command()(serve)
    app.command()(worker)
    app.command()(watch)
    app.add_typer(admin_app, name="admin")


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Run the upload service (settings from PAINBATTERY_* environment variables)."""
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    uvicorn.run(create_app(Settings()), host=host, port=port, log_level="warning")


def worker(
    poll_seconds: Annotated[float, typer.Option(help="Wait between looks at an empty queue.")] = 1.0,
    max_jobs: Annotated[int | None, typer.Option(help="Stop after this many jobs.")] = None,
    idle_exit: Annotated[bool, typer.Option(help="Stop when no job is due.")] = False,
    job_timeout_seconds: Annotated[
        float | None,
        typer.Option(help="Wall-clock limit of one scoring attempt (default: PAINBATTERY_JOB_TIMEOUT_SECONDS, 6 h)."),
    ] = None,
) -> None:
    """Process scoring jobs from the service's database queue until stopped.

    Each job is scored in a child process (the scorer is PAINBATTERY_SCORER); a scorer that crashes or
    passes the time limit costs that job an attempt, and the worker goes on.
    """
    import signal

    from service.jobs import Worker
    from service.settings import Settings

    overrides = {} if job_timeout_seconds is None else {"job_timeout_seconds": job_timeout_seconds}
    w = Worker(Settings(**overrides))
    signal.signal(signal.SIGTERM, lambda *_: w.stop.set())
    n = w.run(poll_seconds=poll_seconds, max_jobs=max_jobs, idle_exit=idle_exit)
    console.print(f"worker {w.name}: {n} job(s) processed")


def _admin_db():
    from service.db import make_engine, session_factory
    from service.settings import Settings

    settings = Settings()
    settings.ensure_dirs()
    return session_factory(make_engine(settings.database_url or ""))


@admin_app.command("create-lab")
def admin_create_lab(name: Annotated[str, typer.Argument(help="Lab name (unique).")]) -> None:
    """Create a lab; prints its id."""
    from sqlalchemy.exc import IntegrityError

    from service.db import Lab

    with _admin_db()() as db:
        lab = Lab(name=name)
        db.add(lab)
        try:
            db.commit()
        except IntegrityError as exc:
            raise ValueError(f"a lab named {name!r} already exists") from exc
        print(lab.id)


@admin_app.command("create-token")
def admin_create_token(
    lab_id: Annotated[int, typer.Argument(help="Lab id.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "",
) -> None:
    """Create an API token for a lab; prints it (only its hash is stored)."""
    from service.db import Lab, Token, hash_token, new_token

    with _admin_db()() as db:
        if db.get(Lab, lab_id) is None:
            raise ValueError(f"no lab with id {lab_id}")
        token = new_token()
        db.add(Token(lab_id=lab_id, token_hash=hash_token(token), name=name))
        db.commit()
        print(token)


@admin_app.command("create-rig")
def admin_create_rig(
    rig_id: Annotated[str, typer.Argument(help="Rig name used in its URL.")],
    study_id: Annotated[int, typer.Option(help="Study its recordings go to.")],
) -> None:
    """Register a camera rig for a study; prints its HMAC secret."""
    import secrets

    from service.db import Rig, Study

    with _admin_db()() as db:
        study = db.get(Study, study_id)
        if study is None:
            raise ValueError(f"no study with id {study_id}")
        secret = secrets.token_hex(32)
        db.add(Rig(rig_id=rig_id, lab_id=study.lab_id, study_id=study.id, secret=secret))
        db.commit()
        print(secret)


def watch(
    folder: Annotated[Path, typer.Argument(help="Folder the rig drops recordings and <stem>.json sidecars into.")],
    service_url: Annotated[str | None, typer.Option(help="Submit to this service (needs --token, --study).")] = None,
    token: Annotated[str | None, typer.Option(help="API token for --service-url.")] = None,
    study: Annotated[int | None, typer.Option(help="Study id for --service-url.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Score locally into this folder instead.")] = None,
    settle_seconds: Annotated[float, typer.Option(help="A file counts as finished when unchanged this long.")] = 2.0,
    once: Annotated[bool, typer.Option(help="Process what is ready now, then exit.")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Assay config override when scoring locally (as for 'score'), repeatable."),
    ] = None,
) -> None:
    """Watch a folder and score (or submit) each recording once it is complete and its sidecar exists."""
    from service.watch import FolderWatcher, LocalScorer, ServiceSubmitter

    if (service_url is None) == (out is None):
        raise ValueError("expected either --service-url (with --token and --study) or --out")
    if service_url is not None and (token is None or study is None):
        raise ValueError("expected --token and --study with --service-url")
    if set_ and service_url is not None:
        raise ValueError("--set applies to local scoring (--out); the service's overrides are its operator's")
    if set_:
        from behavior.assays import assay_names, check_overrides

        check_overrides(set_, assay_names())  # a typo fails here, before any recording is scored
    handler = ServiceSubmitter(service_url, token, study) if service_url else LocalScorer(out, set_ or ())
    watcher = FolderWatcher(folder, handler, settle_seconds=settle_seconds)
    if once:
        # A recording is ready when unchanged for settle_seconds between two looks: look, wait, look.
        done = watcher.process_ready()
        time.sleep(settle_seconds)
        done += watcher.process_ready()
        console.print(f"processed {len(done)} recording(s)")
        return
    console.print(f"watching {folder} (Ctrl-C to stop)")
    watcher.run_forever()
