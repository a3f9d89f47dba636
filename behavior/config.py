"""Access to ``configs/`` (re-exported from :mod:`pose_models.config`, which both layers use)."""

from pose_models.config import ConfigError, apply_overrides, config_dir, list_configs, load_config

__all__ = ["ConfigError", "apply_overrides", "config_dir", "list_configs", "load_config"]
