"""Resumable uploads keep their chunks and state, sizes are 64-bit, rig deliveries a request fingerprint.

What changed in the models since the baseline:

- ``uploads``: ``session_id``, ``chunks`` (the accepted PATCH files), ``state``, ``error``, ``updated_at``;
  ``size`` and ``offset`` become BIGINT (uploads over 2 GiB).
- ``recordings.size_bytes`` (BIGINT, counted against a lab's quota; 0 for recordings stored before).
- ``rig_deliveries.request_sha256`` ('' for deliveries accepted before: a retry of one of them is
  refused as another recording, never recorded twice).

Rows already there are kept. An upload that had finished (``recording_id`` set) becomes ``complete``;
one half-received by the old code (its bytes in one file, not in chunks) cannot be resumed and becomes
``failed`` with the reason; one not started stays ``receiving``. Columns already present (a database
made by a development version's ``create_all``) are left as they are.

Revision ID: 0002_upload_state
Revises: 0001_baseline
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_upload_state"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

OLD_PARTIAL_UPLOAD = "received by an older version of the service; it cannot be resumed"


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def _indexes(table: str) -> set[str]:
    return {i["name"] for i in sa.inspect(op.get_bind()).get_indexes(table)}


def upgrade() -> None:
    """Add the new columns (with defaults for the rows already there) and widen the upload sizes."""
    if "size_bytes" not in _columns("recordings"):
        op.add_column("recordings", sa.Column("size_bytes", sa.BigInteger(), nullable=False, server_default="0"))
    if "request_sha256" not in _columns("rig_deliveries"):
        op.add_column(
            "rig_deliveries", sa.Column("request_sha256", sa.String(length=64), nullable=False, server_default="")
        )
    have = _columns("uploads")
    new_upload_columns = [
        sa.Column("session_id", sa.String(length=200), nullable=False, server_default=""),
        sa.Column("chunks", sa.JSON(), nullable=False, server_default="[]"),
        sa.Column("state", sa.String(length=16), nullable=False, server_default="receiving"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),  # NOT NULL once filled in below
    ]
    with op.batch_alter_table("uploads") as batch:
        for column in new_upload_columns:
            if column.name not in have:
                batch.add_column(column)
        for name in ("size", "offset"):
            batch.alter_column(name, existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)
        if "ix_uploads_state" not in _indexes("uploads"):
            batch.create_index(op.f("ix_uploads_state"), ["state"], unique=False)
    uploads = sa.table(
        "uploads",
        sa.column("state", sa.String),
        sa.column("error", sa.Text),
        sa.column("offset", sa.BigInteger),
        sa.column("recording_id", sa.Integer),
        sa.column("created_at", sa.DateTime),
        sa.column("updated_at", sa.DateTime),
    )
    if "state" not in have:
        op.execute(uploads.update().where(uploads.c.recording_id.is_not(None)).values(state="complete"))
        op.execute(
            uploads.update()
            .where(uploads.c.recording_id.is_(None), uploads.c.offset > 0)
            .values(state="failed", error=OLD_PARTIAL_UPLOAD)
        )
    op.execute(uploads.update().where(uploads.c.updated_at.is_(None)).values(updated_at=uploads.c.created_at))
    with op.batch_alter_table("uploads") as batch:
        batch.alter_column("updated_at", existing_type=sa.DateTime(), nullable=False)


def downgrade() -> None:
    """Drop the added columns and narrow the upload sizes again."""
    with op.batch_alter_table("uploads") as batch:
        batch.drop_index(op.f("ix_uploads_state"))
        for name in ("updated_at", "error", "state", "chunks", "session_id"):
            batch.drop_column(name)
        for name in ("size", "offset"):
            batch.alter_column(name, existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False)
    op.drop_column("rig_deliveries", "request_sha256")
    op.drop_column("recordings", "size_bytes")
