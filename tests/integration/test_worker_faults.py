"""Worker faults with a real server and real worker processes: leases lost on every attempt, scorers that
crash or hang in their child process, and labs taking turns in the queue.

A scorer that misbehaves on purpose is written into ``tmp_path`` and named by ``PAINBATTERY_SCORER``
(the operator's setting); what it does depends on the session id: ``crash-*`` dies by SIGSEGV,
``hang-*`` reports progress and sleeps forever, ``quick-*`` returns at once, anything else is scored
by the real scorer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.integration.test_service import DATABASES, Server, metadata, upload, wait_job

pytestmark = pytest.mark.slow

FAULTY_SCORER = """
import os
import signal
import time

from service.scorer import score_session


def score(session, *, model, work_dir, progress):
    sid = session["session_id"]
    with open(os.environ["FAULTY_SCORER_LOG"], "a") as fh:
        fh.write(sid + "\\n")
    if sid.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if sid.startswith("hang"):
        progress("poses", 0.5)
        while True:
            time.sleep(3600)
    if sid.startswith("quick"):
        return [], {"session_id": sid}
    return score_session(session, model=model, work_dir=work_dir, progress=progress)
"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from behavior.synthetic import simulate_clip, write_clip

    c = simulate_clip("hargreaves", seed=11, latencies_s=[3.0], session_fields={"side": "left"})
    return c, write_clip(c, tmp_path_factory.mktemp("clip"))


class Faulty:
    """A server whose workers use the faulty scorer, on a database of its own (the queue holds only this
    test's jobs); every worker it starts is killed at :meth:`close`, with the server."""

    def __init__(self, root: Path, database: str = "sqlite", **settings: str) -> None:
        (root / "scorers").mkdir(parents=True)
        (root / "scorers" / "faulty_scorer.py").write_text(FAULTY_SCORER)
        self.log = root / "scored.log"
        self.log.touch()
        pythonpath = os.pathsep.join(p for p in (str(root / "scorers"), os.environ.get("PYTHONPATH", "")) if p)
        self.server = Server(
            root,
            database,
            PYTHONPATH=pythonpath,
            PAINBATTERY_SCORER="faulty_scorer:score",
            FAULTY_SCORER_LOG=str(self.log),
            **settings,
        )
        self.root = root
        self.workers: list[subprocess.Popen] = []
        self.files: list[IO[str]] = []

    def worker(self, *args: str) -> subprocess.Popen:
        n = len(self.workers)
        out, err = (self.root / f"worker{n}.out").open("w"), (self.root / f"worker{n}.err").open("w")
        self.files += [out, err]
        self.workers.append(self.server.worker(*args, stdout=out, stderr=err))
        return self.workers[-1]

    def output(self, proc: subprocess.Popen) -> str:
        n = self.workers.index(proc)
        return (self.root / f"worker{n}.out").read_text() + (self.root / f"worker{n}.err").read_text()

    def job(self, headers: dict, job_id: int) -> dict:
        return httpx.get(f"{self.server.url}/api/v1/jobs/{job_id}", headers=headers).json()

    def wait_until(self, headers: dict, job_id: int, ok, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(headers, job_id)
            if ok(job):
                return job
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} never reached the expected state: {job}")

    def scored(self) -> list[str]:
        return self.log.read_text().split()

    def close(self) -> None:
        try:
            self.server.stop()  # its workers (whole process groups), the server, the database
        finally:
            for fh in self.files:
                fh.close()


@pytest.fixture
def faulty(request, tmp_path):
    made: list[Faulty] = []

    def make(database: str = "sqlite", **settings: str) -> Faulty:
        made.append(Faulty(tmp_path / f"svc{len(made)}", database, **settings))
        return made[-1]

    yield make
    for f in made:
        f.close()  # pass or fail


def study_of(f: Faulty, lab: str) -> tuple[dict, int]:
    _, headers = f.server.lab(lab)
    study = httpx.post(f"{f.server.url}/api/v1/studies", json={"name": lab}, headers=headers).json()["id"]
    return headers, study


def submit(f: Faulty, headers: dict, study: int, clip, session_id: str) -> int:
    clip_obj, paths = clip
    r = upload(f.server, headers, study, paths["pose"], metadata(clip_obj, session_id))
    assert r.status_code == 201, r.text
    return r.json()["job_id"]


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process just ended
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"  # a zombie has ended; only its (dead) parent could reap it


@pytest.mark.parametrize("database", DATABASES)
@pytest.mark.parametrize("how", ["SIGSTOP", "SIGKILL"])
def test_lease_lost_on_every_attempt_fails_after_max_attempts(faulty, clip, how, database):
    """Each worker that takes the job is frozen (SIGSTOP) or killed (SIGKILL) mid-job; after the third the
    job fails naming the lost lease, and a healthy worker never takes it a fourth time."""
    f = faulty(database, PAINBATTERY_MAX_ATTEMPTS="3")
    headers, study = study_of(f, "lab-lease")
    job_id = submit(f, headers, study, clip, "hang-lease")
    for attempt in (1, 2, 3):
        w = f.worker()
        job = f.wait_until(headers, job_id, lambda j, a=attempt: j["attempts"] == a and j["message"][:5] == "poses")
        assert job["status"] == "running"  # the scorer is in its child, hanging, and reported progress
        if how == "SIGSTOP":
            os.killpg(w.pid, signal.SIGSTOP)  # the worker and its child freeze holding the lease
        else:
            kids = children_of(w.pid)
            assert kids, "the worker scores in a child process"
            os.kill(w.pid, signal.SIGKILL)  # the worker alone: its orphaned child must leave by itself
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not all(gone(k) for k in kids):
                time.sleep(0.1)
            assert all(gone(k) for k in kids), "a scoring child outlived its killed worker"
    healthy = f.worker()
    job = f.wait_until(headers, job_id, lambda j: j["status"] == "failed", timeout=60)
    assert job["attempts"] == 3
    assert job["error"].startswith("LeaseLost") and "expired on attempt 3 of 3" in job["error"], job
    time.sleep(1.0)  # the healthy worker keeps polling: the job stays failed, never a fourth attempt
    assert f.job(headers, job_id)["attempts"] == 3 and healthy.poll() is None
    assert f.scored() == ["hang-lease"] * 3
    healthy.send_signal(signal.SIGTERM)
    assert healthy.wait(timeout=30) == 0, f.output(healthy)


@pytest.mark.parametrize("database", DATABASES)
def test_crashing_scorer_fails_the_job_and_the_worker_goes_on(faulty, clip, database):
    """The scoring child dies by SIGSEGV on every attempt: the job fails after max_attempts saying so, and
    the same worker process then scores the next job correctly."""
    clip_obj, _ = clip
    f = faulty(database, PAINBATTERY_MAX_ATTEMPTS="3")
    headers, study = study_of(f, "lab-crash")
    crash = submit(f, headers, study, clip, "crash-1")
    good = submit(f, headers, study, clip, "good-1")
    w = f.worker("--idle-exit")
    assert w.wait(timeout=240) == 0, f.output(w)
    assert "4 job(s) processed" in f.output(w)  # one process ran all four attempts
    job = wait_job(f.server, headers, crash, timeout=10)
    assert job["status"] == "failed" and job["attempts"] == 3, job
    assert "scorer crashed" in job["error"] and "SIGSEGV" in job["error"], job
    done = wait_job(f.server, headers, good, timeout=10)
    assert done["status"] == "done" and done["attempts"] == 1, done
    measures = httpx.get(f"{f.server.url}/api/v1/studies/{study}/measures", headers=headers).json()
    latency = [m for m in measures if m["measure"] == "latency_ipsi_s"]
    assert len(latency) == 1 and abs(latency[0]["value"] - clip_obj.truth["trials"][0]["latency_s"]) <= 2 / 15
    assert f.scored() == ["crash-1"] * 3 + ["good-1"]


@pytest.mark.parametrize("database", DATABASES)
def test_hung_scorer_is_cut_short_at_its_limit_and_the_worker_goes_on(faulty, clip, database):
    """A scorer that never returns is killed at PAINBATTERY_JOB_TIMEOUT_SECONDS (longer than the lease, which
    the worker renews meanwhile); its progress reaches the job row; the next job is scored."""
    limits = {"PAINBATTERY_JOB_TIMEOUT_SECONDS": "8", "PAINBATTERY_LEASE_SECONDS": "1", "PAINBATTERY_MAX_ATTEMPTS": "2"}
    f = faulty(database, **limits)
    headers, study = study_of(f, "lab-hang")
    hang = submit(f, headers, study, clip, "hang-1")
    good = submit(f, headers, study, clip, "good-2")
    w = f.worker("--idle-exit")
    running = f.wait_until(headers, hang, lambda j: j["message"].startswith("poses 50"))
    assert running["status"] == "running" and running["progress"] == pytest.approx(0.475)
    assert w.wait(timeout=240) == 0, f.output(w)
    job = wait_job(f.server, headers, hang, timeout=10)
    assert job["status"] == "failed" and job["attempts"] == 2, job  # the lease held: no extra attempt
    assert job["error"].startswith("ScorerTimeoutError: scorer cut short at 8 s"), job
    done = wait_job(f.server, headers, good, timeout=10)
    assert done["status"] == "done" and done["attempts"] == 1, done
    assert f.scored() == ["hang-1", "hang-1", "good-2"]


@pytest.mark.parametrize("database", DATABASES)
def test_labs_take_turns_in_the_queue(faulty, clip, database):
    """Lab A queues six jobs, then lab B one: with one worker, B's job is taken second, not last.

    The order is read from the jobs themselves (one worker finishes them in the order it took them), so
    this holds whichever scorer runs.
    """
    f = faulty(database)
    a, study_a = study_of(f, "lab-bulk")
    b, study_b = study_of(f, "lab-small")
    names = [f"quick-a{i}" for i in range(6)] + ["quick-b0"]
    jobs = [submit(f, a, study_a, clip, name) for name in names[:6]]
    jobs.append(submit(f, b, study_b, clip, names[6]))
    w = f.worker("--idle-exit")
    assert w.wait(timeout=180) == 0, f.output(w)
    finished = [wait_job(f.server, h, j, timeout=10) for j, h in zip(jobs, [a] * 6 + [b], strict=True)]
    assert all(job["status"] == "done" and job["attempts"] == 1 for job in finished), finished
    order = [job["session_id"] for job in sorted(finished, key=lambda job: job["updated_at"])]
    assert order.index("quick-b0") <= 1, order
    assert order[0] == "quick-a0"  # no lab served yet: the oldest job goes first
