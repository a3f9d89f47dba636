"""Shared fixtures: where the real data lives, and marker handling (realdata, gpu)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The real-data folder: ``$PAINBATTERY_DATA`` or ``../shared/data`` beside the repository."""
    env = os.environ.get("PAINBATTERY_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared real data; tests using it are skipped when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set PAINBATTERY_DATA)")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    data_missing = not shared_data_dir().is_dir()
    gpu_items = [item for item in items if "gpu" in item.keywords]
    cuda = False
    if gpu_items:  # only pay for importing torch when a GPU test was collected
        try:
            import torch

            cuda = torch.cuda.is_available()
        except ImportError:
            cuda = False
    for item in items:
        if data_missing and "realdata" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"real data not found at {shared_data_dir()}"))
        if not cuda and "gpu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="no CUDA device"))
