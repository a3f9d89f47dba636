"""Provenance: every output folder gets ``provenance.json`` (version, resolved config, input hashes)."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from behavior import __version__

__all__ = ["file_sha256", "write_provenance"]

_LIBRARIES = ("numpy", "pandas", "xarray", "opencv-python-headless", "av", "sleap-io", "scikit-learn", "torch")


def file_sha256(path: str | Path, *, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's content, read in chunks (videos can be many GB)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _library_versions() -> dict[str, str]:
    found = {}
    for name in _LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def write_provenance(
    out_dir: str | Path,
    *,
    command: str,
    config: dict[str, Any],
    inputs: Iterable[str | Path] = (),
    outputs: Iterable[str | Path] = (),
) -> Path:
    """Write ``out_dir/provenance.json`` describing how the folder's contents were made.

    Parameters
    ----------
    command
        What produced the outputs (e.g. ``"simulate gait"``).
    config
        The resolved parameters (JSON-serialisable).
    inputs, outputs
        Files read and written; each is recorded with its SHA-256.
    """
    out_dir = Path(out_dir)
    record = {
        "painbattery_version": __version__,
        "command": command,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": _library_versions(),
        "config": config,
        "inputs": {str(p): file_sha256(p) for p in inputs},
        "outputs": {
            str(Path(p).relative_to(out_dir) if Path(p).is_relative_to(out_dir) else p): file_sha256(p) for p in outputs
        },
    }
    path = out_dir / "provenance.json"
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path
