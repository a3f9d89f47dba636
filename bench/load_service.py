"""Load test of the upload service on this machine: concurrent clients upload recordings and poll their jobs.

For each ``--workers`` count it starts a real server (``painbattery serve``) on 127.0.0.1 with a fresh
database (SQLite, or a new PostgreSQL database created for the run and dropped after it) and that many
``painbattery worker`` processes. Then:

1. ``--clients`` threads each upload ``--uploads`` pose files (a synthetic Hargreaves session each) and
   poll their jobs; then the same with ``--video-uploads`` real H.264 videos of about ``--video-mb`` MB
   (the synthetic rig's Hargreaves video, lossless), which the workers score through a pose model
   (``--model``, or a small one trained here first). Printed per phase: uploads/s, upload latency
   p50/p95/p99, status-poll latency p50/p95/p99, the time until every job is done (jobs/min) and the
   errors (any non-2xx answer or failed job).
2. One ``--big-mb`` MB upload (a Motion-JPEG AVI made here) streamed as one request, while the server's
   resident memory (the server process and its checker children) is sampled every 20 ms: printed before,
   peak during, and peak during a ``--big-mb / 10`` MB upload, so growth with the upload's size shows.

All traffic stays on loopback. PostgreSQL: ``--database postgres`` with ``--database-url`` or
``PAINBATTERY_TEST_POSTGRES_URL`` (a role that may create databases).

    .venv/bin/python bench/load_service.py [--database sqlite|postgres] [--workers 2 4] [--clients 32]
        [--uploads 5] [--video-uploads 2] [--video-mb 5] [--big-mb 1024] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent / "painbattery"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (1-99) of ``values`` (NaN when empty)."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100)[int(q) - 1]


def _ms(values: list[float]) -> str:
    return "/".join(f"{1000 * percentile(values, q):.0f}" for q in (50, 95, 99)) + " ms (p50/p95/p99)"


@contextmanager
def fresh_database(kind: str, url: str | None, folder: Path) -> Iterator[str]:
    """A new empty database for one run: a SQLite file, or ``pb_load_<random>`` on the PostgreSQL server."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'painbattery.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    if not url:
        raise SystemExit("--database postgres needs --database-url or PAINBATTERY_TEST_POSTGRES_URL")
    name = f"pb_load_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_recordings(root: Path, video_mb: float) -> dict[str, tuple[bytes, dict]]:
    """A pose file and a lossless video of about ``video_mb`` MB, with their session metadata."""
    from behavior.synthetic import simulate_clip, write_clip

    def meta(clip) -> dict:
        return clip.session.model_dump(mode="json", exclude={"video", "pose", "model"})

    out = {}
    clip = simulate_clip("hargreaves", seed=1, latencies_s=[2.0], session_fields={"side": "left"})
    out["pose"] = (write_clip(clip, root / "pose")["pose"].read_bytes(), meta(clip))
    # one lossless 160x120 frame costs about 5.4 kB: trials of 8-12 s until the video is big enough
    n_trials = max(1, round(video_mb * 1e6 / 5400 / 15 / 12))
    latencies = [8.0 + 4.0 * (i % 2) for i in range(n_trials)]
    sides = ["left" if i % 2 == 0 else "right" for i in range(n_trials)]
    clip = simulate_clip(
        "hargreaves", seed=2, latencies_s=latencies, trial_sides=sides, session_fields={"side": "left"}
    )
    out["video"] = (write_clip(clip, root / "video", crf=0)["video"].read_bytes(), meta(clip))
    return out


def train_small_model(root: Path) -> Path:
    """The demo's paw model, 10 epochs (it only has to run, not to be good)."""
    from behavior.synthetic.training import labelled_frames
    from pose_models.nets.model import ModelConfig, TrainConfig
    from pose_models.train import train_model

    config = ModelConfig(
        input_scale=1.0,
        neck_channels=32,
        train=TrainConfig(epochs=10, batch_size=8, lr=2e-3, patience_epochs=10, frozen_layers=5),
    )
    train_model(labelled_frames(assays=("hargreaves",), n_clips=4, seed=1), root / "model", config, seed=0)
    return root / "model"


def big_video(path: Path, megabytes: float) -> Path:
    """A Motion-JPEG AVI of noise frames (about 1.5 MB each at 1920x1080) of at least ``megabytes`` MB."""
    import cv2
    import numpy as np

    if path.exists() and path.stat().st_size >= megabytes * 1e6:
        return path
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(4)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (1920, 1080))
    i = 0
    while True:
        writer.write(frames[i % 4])
        i += 1
        if path.stat().st_size >= megabytes * 1e6:
            break
    writer.release()
    return path


class MemorySampler:
    """Samples the memory of the server process and of it with its checker children every 20 ms on a thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak_main_bytes = 0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[int, int]:
        """(resident bytes of the server process, proportional set size of it and its children)."""
        import psutil

        main, total = 0, 0
        for p in [self.process, *self.process.children(recursive=True)]:
            try:
                info = p.memory_full_info()
            except psutil.Error:
                continue
            main = info.rss if p.pid == self.process.pid else main
            total += info.pss  # shared library pages counted once across the processes, not in each
        return main, total

    def _run(self) -> None:
        while not self._stop.is_set():
            main, total = self.sample()
            self.peak_main_bytes = max(self.peak_main_bytes, main)
            self.peak_bytes = max(self.peak_bytes, total)
            time.sleep(0.02)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def wait_until_idle(processes: list[subprocess.Popen], timeout_s: float = 60.0) -> float:
    """Wait until the started processes have finished importing (together under 10 % of a core for 1 s).

    Measured from a cold start, the first uploads would time the workers' imports (torch, ONNX Runtime)
    competing for the same two cores, not the service.
    """
    import psutil

    def cpu_seconds() -> float:
        total = 0.0
        for p in processes:
            try:
                proc = psutil.Process(p.pid)
                for q in [proc, *proc.children(recursive=True)]:
                    t = q.cpu_times()
                    total += t.user + t.system
            except psutil.Error:
                continue
        return total

    t0 = time.perf_counter()
    last = cpu_seconds()
    while time.perf_counter() - t0 < timeout_s:
        time.sleep(1.0)
        now = cpu_seconds()
        if now - last < 0.1:
            break
        last = now
    return time.perf_counter() - t0


def upload_phase(
    url: str, headers: dict[str, str], study: int, payload: bytes, meta: dict, filename: str, clients: int, uploads: int
) -> dict:
    """``clients`` threads each upload ``uploads`` copies and poll their jobs; returns the figures."""
    upload_times, poll_times, errors, jobs = [], [], [], []
    lock = threading.Lock()
    tag = uuid.uuid4().hex[:6]

    def client(c: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            for u in range(uploads):
                m = {**meta, "session_id": f"{tag}-c{c}-u{u}"}
                t0 = time.perf_counter()
                try:
                    r = http.post(
                        f"/api/v1/studies/{study}/sessions",
                        files={"file": (filename, payload)},
                        data={"metadata": json.dumps(m)},
                    )
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(f"upload: {exc!r}")
                    continue
                with lock:
                    upload_times.append(time.perf_counter() - t0)
                    if r.status_code != 201:
                        errors.append(f"upload {r.status_code}: {r.text[:100]}")
                        continue
                    jobs.append(r.json()["job_id"])
                for _ in range(3):  # a client checks its job a few times after uploading
                    t0 = time.perf_counter()
                    s = http.get(f"/api/v1/jobs/{r.json()['job_id']}")
                    with lock:
                        poll_times.append(time.perf_counter() - t0)
                        if s.status_code != 200:
                            errors.append(f"poll {s.status_code}")

    t_start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_uploaded = time.perf_counter() - t_start
    states: list[str] = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        while True:
            states = [http.get(f"/api/v1/jobs/{j}").json()["status"] for j in jobs]
            if all(s in ("done", "failed") for s in states):
                break
            time.sleep(0.5)
    t_done = time.perf_counter() - t_start
    return {
        "n": len(upload_times),
        "t_uploaded": t_uploaded,
        "t_done": t_done,
        "upload_times": upload_times,
        "poll_times": poll_times,
        "errors": errors,
        "jobs": len(jobs),
        "failed": states.count("failed"),
    }


def print_phase(name: str, size_bytes: int, r: dict) -> None:
    print(
        f"  {name} ({size_bytes / 1e6:.2f} MB each): {r['n']} uploads in {r['t_uploaded']:.1f} s = "
        f"{r['n'] / r['t_uploaded']:.1f} uploads/s; upload latency {_ms(r['upload_times'])}; "
        f"status polls {len(r['poll_times'])}, {_ms(r['poll_times'])}"
    )
    print(
        f"    all {r['jobs']} jobs done {r['t_done']:.1f} s after the first upload "
        f"({r['jobs'] / r['t_done'] * 60:.0f} jobs/min); failed jobs {r['failed']}; "
        f"errors {len(r['errors'])}" + (f" (first: {r['errors'][0]})" if r["errors"] else "")
    )


def big_upload(url: str, headers: dict[str, str], study: int, path: Path, pid: int) -> str:
    """Stream ``path`` as one upload (read in chunks, never whole); the server's memory before and at peak."""
    import cv2

    size = path.stat().st_size
    meta = {"session_id": f"big-{uuid.uuid4().hex[:6]}", "animal_id": "big", "group": "g", "timepoint": "baseline",
            "assay": "hargreaves", "fps": 30.0, "side": "left"}  # fmt: skip
    frames = int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT))
    with MemorySampler(pid) as mem:
        before_main, before = mem.sample()
        t0 = time.perf_counter()
        with path.open("rb") as fh, httpx.Client(base_url=url, headers=headers, timeout=1800) as http:
            r = http.post(
                f"/api/v1/studies/{study}/sessions",
                files={"file": ("big.avi", fh)},
                data={"metadata": json.dumps(meta)},
            )
        dt = time.perf_counter() - t0
    return (
        f"{size / 1e6:.0f} MB ({frames} frames 1920x1080 MJPEG) streamed in {dt:.1f} s ({size / 1e6 / dt:.0f} MB/s), "
        f"answer {r.status_code}; server process RSS {before_main / 1e6:.0f} MB before, peak "
        f"{mem.peak_main_bytes / 1e6:.0f} MB; with its checker children (PSS) {before / 1e6:.0f} -> "
        f"{mem.peak_bytes / 1e6:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--database-url", default=os.environ.get("PAINBATTERY_TEST_POSTGRES_URL"))
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--uploads", type=int, default=5, help="pose-file uploads per client")
    parser.add_argument("--video-uploads", type=int, default=2, help="video uploads per client (0: none)")
    parser.add_argument("--video-mb", type=float, default=5.0)
    parser.add_argument("--big-mb", type=float, default=1024.0, help="size of the one streamed upload (0: none)")
    parser.add_argument("--model", type=Path, default=None, help="pose model for the videos (default: train one)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="load-service-"))
    recordings = make_recordings(root, args.video_mb)
    model = args.model
    if args.video_uploads and model is None:
        t0 = time.perf_counter()
        model = train_small_model(root)
        print(f"(trained a small paw model for the video jobs in {time.perf_counter() - t0:.0f} s)")
    big_files = {}
    if args.big_mb:
        t0 = time.perf_counter()
        big_files = {
            "big": big_video(root / "big.avi", args.big_mb),
            "tenth": big_video(root / "tenth.avi", args.big_mb / 10),
        }
        print(f"(made the {args.big_mb:.0f} and {args.big_mb / 10:.0f} MB videos in {time.perf_counter() - t0:.0f} s)")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores; database "
        f"{args.database}; {args.clients} clients; all on 127.0.0.1"
    )
    for n_workers in args.workers:
        folder = root / f"run-{n_workers}"
        folder.mkdir()
        with fresh_database(args.database, args.database_url, folder) as db_url:
            env = {
                **os.environ,
                "PAINBATTERY_DATA_DIR": str(folder / "data"),
                "PAINBATTERY_DATABASE_URL": db_url,
                "PAINBATTERY_MAX_UPLOAD_BYTES": str(int(max(args.big_mb, 1) * 1.2e6) + 4 * 1024**3),
            }
            if model is not None:
                env["PAINBATTERY_DEFAULT_MODEL"] = str(model)

            def cli(*a: str, env: dict = env) -> str:
                return subprocess.run(
                    [str(BIN), *a], env=env, capture_output=True, text=True, check=True
                ).stdout.strip()

            lab = cli("admin", "create-lab", "load")
            token = cli("admin", "create-token", lab)
            port = _port()
            url = f"http://127.0.0.1:{port}"
            server = subprocess.Popen(
                [str(BIN), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            workers = [
                subprocess.Popen(
                    [str(BIN), "worker", "--poll-seconds", "0.2"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(n_workers)
            ]
            headers = {"Authorization": f"Bearer {token}"}
            try:
                for _ in range(150):
                    try:
                        if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.2)
                study = httpx.post(f"{url}/api/v1/studies", json={"name": "load"}, headers=headers).json()["id"]
                settle_s = wait_until_idle([server, *workers])
                print(f"{n_workers} workers (the server and workers started and settled in {settle_s:.0f} s):")
                payload, meta = recordings["pose"]
                r = upload_phase(url, headers, study, payload, meta, "rec.h5", args.clients, args.uploads)
                print_phase("pose files", len(payload), r)
                if args.video_uploads:
                    payload, meta = recordings["video"]
                    r = upload_phase(url, headers, study, payload, meta, "rec.mp4", args.clients, args.video_uploads)
                    print_phase("videos", len(payload), r)
                if big_files:
                    for key in ("tenth", "big"):
                        line = big_upload(url, headers, study, big_files[key], server.pid)
                        print(f"  one streamed upload of {line}")
            finally:
                for w in workers:
                    w.terminate()
                server.terminate()
                for p in [*workers, server]:
                    try:
                        p.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        p.kill()


if __name__ == "__main__":
    main()
