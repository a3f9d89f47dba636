"""Service settings from the environment (``PAINBATTERY_`` prefix).

``PAINBATTERY_DATA_DIR`` (default ``./painbattery-data``) holds the SQLite database and the stored
files unless ``PAINBATTERY_DATABASE_URL`` (e.g. ``postgresql+psycopg://user:pw@host/db``) and
``PAINBATTERY_STORAGE_DIR`` say otherwise.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything the service and its workers need to know."""

    model_config = SettingsConfigDict(env_prefix="PAINBATTERY_", extra="ignore")

    data_dir: Path = Path("painbattery-data")
    database_url: str | None = None
    storage_dir: Path | None = None
    max_upload_bytes: int = Field(4 * 1024**3, gt=0, description="Largest accepted recording.")
    chunk_bytes: int = Field(1024**2, gt=0, description="Read/write block when streaming uploads.")
    lease_seconds: float = Field(120.0, gt=0, description="A running job whose worker stops renewing is retaken.")
    max_attempts: int = Field(3, ge=1)
    retry_backoff_seconds: float = Field(5.0, ge=0, description="First retry delay; doubles each attempt.")
    job_timeout_seconds: float = Field(
        6 * 3600.0, gt=0, description="Wall-clock limit of one scoring attempt; the scorer is killed at it."
    )
    scorer: str = Field(
        "service.scorer:score_session",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description="Scoring function, 'package.module:function' (operator's setting, never a user's).",
    )
    rig_clock_skew_seconds: float = Field(300.0, gt=0, description="Rig signatures older/newer than this: replay.")
    default_model: Path | None = Field(None, description="Pose model for uploaded videos without a pose file.")
    assay_overrides: list[str] = Field(
        default_factory=list,
        description=(
            "Dotted assay config overrides for every job, as 'score --set' takes them (a JSON list in "
            "PAINBATTERY_ASSAY_OVERRIDES), e.g. an assay's classifier directory "
            "(operator's setting, never a user's)."
        ),
    )
    upload_expiry_hours: float = Field(48.0, gt=0, description="A resumable upload idle this long is deleted.")
    lab_quota_bytes: int | None = Field(None, gt=0, description="Most a lab may store (recordings + uploads).")
    check_processes: int = Field(2, ge=1, description="Child processes that open uploaded files to check them.")
    check_timeout_seconds: float = Field(600.0, gt=0, description="An upload whose check takes longer is refused.")

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        self.data_dir = self.data_dir.resolve()
        if self.storage_dir is None:
            self.storage_dir = self.data_dir / "storage"
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'painbattery.db'}"
        return self

    def ensure_dirs(self) -> None:
        """Create the data and storage folders."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        assert self.storage_dir is not None
        self.storage_dir.mkdir(parents=True, exist_ok=True)
