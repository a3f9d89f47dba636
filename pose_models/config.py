"""Access to the YAML files under ``configs/`` (skeletons, assays, filament series, battery, models).

The folder is the repository's ``configs/`` (or ``$PAINBATTERY_CONFIGS``). Every file is read with a
strict pydantic model by the module that owns it; this module only finds and parses files.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "apply_overrides", "config_dir", "list_configs", "load_config", "parse_yaml"]

# libyaml's safe loader where PyYAML was built with it: the same documents, parsed ~10x faster (every
# session reads its assay config and its pose model's model.yaml, which adds up over a study)
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(ValueError):
    """A configuration file is missing or malformed."""


def parse_yaml(text: str) -> Any:
    """Parse YAML text with the safe loader (plain values only, no Python objects)."""
    return yaml.load(text, Loader=_SafeLoader)


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
        data = parse_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: expected YAML, got a parse error: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted ``key.sub=value`` overrides applied (values parsed as YAML).

    Unknown keys are not checked here: the config's strict model rejects them with their name.

    Raises
    ------
    ConfigError
        If an override is not of the form ``key=value`` or walks into a non-mapping.
    """
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected an override as key.sub=value, got {item!r}")
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = parse_yaml(raw)
    return out
