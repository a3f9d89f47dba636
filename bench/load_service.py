"""Load test of the upload service on this machine: concurrent clients upload small recordings and poll.

Starts a real server (``painbattery serve``) on 127.0.0.1 with a fresh SQLite database and two workers,
then N client threads each upload M small pose files (a synthetic Hargreaves session each) and poll
their jobs until done. Prints upload throughput, p50/p95 latency of uploads and of status polls,
time until every job is scored, and the number of errors (should be 0). All traffic stays on loopback.

    .venv/bin/python bench/load_service.py [--clients 8] [--uploads 5] [--workers 2]
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
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent / "painbattery"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else (values[0] if values else float("nan"))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--uploads", type=int, default=5, help="uploads per client")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from behavior.synthetic import simulate_clip, write_clip

    root = Path(tempfile.mkdtemp(prefix="load-service-"))
    clip = simulate_clip("hargreaves", seed=1, latencies_s=[2.0], session_fields={"side": "left"})
    files = write_clip(clip, root / "clip")
    payload = files["pose"].read_bytes()
    meta = clip.session.model_dump(mode="json", exclude={"video", "pose", "model"})
    env = {**os.environ, "PAINBATTERY_DATA_DIR": str(root / "data")}
    lab = subprocess.run([str(BIN), "admin", "create-lab", "load"], env=env, capture_output=True, text=True, check=True)
    token = subprocess.run(
        [str(BIN), "admin", "create-token", lab.stdout.strip()], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    port = _port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    workers = [
        subprocess.Popen(
            [str(BIN), "worker", "--poll-seconds", "0.2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(args.workers)
    ]
    headers = {"Authorization": f"Bearer {token}"}
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        study = httpx.post(f"{url}/api/v1/studies", json={"name": "load"}, headers=headers).json()["id"]
        upload_times, poll_times, errors, jobs = [], [], [], []
        lock = threading.Lock()

        def client(c: int) -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
                for u in range(args.uploads):
                    m = {**meta, "session_id": f"c{c}-u{u}"}
                    t0 = time.perf_counter()
                    r = http.post(
                        f"/api/v1/studies/{study}/sessions",
                        files={"file": ("rec.h5", payload)},
                        data={"metadata": json.dumps(m)},
                    )
                    dt = time.perf_counter() - t0
                    with lock:
                        upload_times.append(dt)
                        if r.status_code != 201:
                            errors.append(f"upload {r.status_code}: {r.text[:100]}")
                        else:
                            jobs.append(r.json()["job_id"])
                    for _ in range(3):  # a client checks its job a few times after uploading
                        t0 = time.perf_counter()
                        s = http.get(f"/api/v1/jobs/{r.json()['job_id']}") if r.status_code == 201 else None
                        with lock:
                            poll_times.append(time.perf_counter() - t0)
                            if s is not None and s.status_code != 200:
                                errors.append(f"poll {s.status_code}")

        t_start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_uploaded = time.perf_counter() - t_start
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            while True:
                states = [http.get(f"/api/v1/jobs/{j}").json()["status"] for j in jobs]
                if all(s in ("done", "failed") for s in states):
                    break
                time.sleep(0.5)
        t_done = time.perf_counter() - t_start
        failed = states.count("failed")
        n = len(upload_times)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.clients} clients x {args.uploads} uploads "
            f"of {len(payload) / 1024:.0f} kB pose files; {args.workers} workers; SQLite"
        )
        print(
            f"uploads: {n} in {t_uploaded:.1f} s = {n / t_uploaded:.1f} uploads/s; "
            f"latency p50 {1000 * percentile(upload_times, 50):.0f} ms, "
            f"p95 {1000 * percentile(upload_times, 95):.0f} ms"
        )
        print(
            f"status polls: {len(poll_times)}; latency p50 {1000 * percentile(poll_times, 50):.0f} ms, "
            f"p95 {1000 * percentile(poll_times, 95):.0f} ms"
        )
        print(
            f"all {len(jobs)} jobs finished {t_done:.1f} s after the first upload "
            f"({len(jobs) / t_done * 60:.0f} sessions/min); failed jobs: {failed}"
        )
        print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    finally:
        for w in workers:
            w.terminate()
        server.terminate()


if __name__ == "__main__":
    main()
