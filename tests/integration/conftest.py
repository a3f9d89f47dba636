"""The ``postgres`` marker: PostgreSQL cases skip with the reason where the server cannot be reached, and
the run ends with a count of them (how many ran, passed, failed, skipped)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.service import Server, postgres_unavailable

_POSTGRES_OUTCOMES: Counter[str] = Counter()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    postgres_items = [item for item in items if "postgres" in item.keywords]
    reason = postgres_unavailable() if postgres_items else None
    if reason is not None:
        for item in postgres_items:
            item.add_marker(pytest.mark.skip(reason=f"PostgreSQL unavailable: {reason}"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "postgres" not in report.keywords:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _POSTGRES_OUTCOMES[report.outcome] += 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _POSTGRES_OUTCOMES:
        return
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(_POSTGRES_OUTCOMES.items()))
    line = f"PostgreSQL cases: {counts}"
    reason = postgres_unavailable()
    if reason is not None:
        line += f" (PostgreSQL unavailable: {reason})"
    terminalreporter.write_line(line)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers for one test (``make_server(database, **settings)``); all are stopped at its end."""
    started: list[Server] = []

    def make(database: str = "sqlite", **settings: str) -> Server:
        started.append(Server(tmp_path / f"svc{len(started)}", database, **settings))
        return started[-1]

    yield make
    for server in started:
        server.stop()
