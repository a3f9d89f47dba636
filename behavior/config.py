"""Access to the YAML files under ``configs/`` (skeletons, assays, filament series, battery, models).

The folder is the repository's ``configs/`` (or ``$PAINBATTERY_CONFIGS``). Every file is read with a
strict pydantic model by the module that owns it; this module only finds and parses files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "config_dir", "list_configs", "load_config"]


class ConfigError(ValueError):
    """A configuration file is missing or malformed."""


def config_dir() -> Path:
    """The configs folder: ``$PAINBATTERY_CONFIGS`` or ``configs/`` at the repository root."""
    env = os.environ.get("PAINBATTERY_CONFIGS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "configs"


def list_configs(kind: str) -> list[str]:
    """Names (file stems) of the YAML files in ``configs/<kind>/``."""
    folder = config_dir() / kind
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_config(kind: str, name_or_path: str | Path) -> dict[str, Any]:
    """Parse ``configs/<kind>/<name>.yaml``, or a YAML file given by path.

    Raises
    ------
    ConfigError
        If there is no such config (the message lists the known names) or it is not a YAML mapping.
    """
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        path = candidate
    else:
        path = config_dir() / kind / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(list_configs(kind)) or "none"
            raise ConfigError(f"unknown {kind} config {str(name_or_path)!r}, expected one of: {known}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: expected YAML, got a parse error: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping, got {type(data).__name__}")
    return data
