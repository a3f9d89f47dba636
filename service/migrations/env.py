"""Alembic environment: migrations run on the connection :func:`service.db.upgrade_database` hands over.

Run from the code only (``make_engine`` brings every database to head), so there is no ``alembic.ini``;
the connection arrives in ``config.attributes["connection"]``, already in a transaction and holding
the migration lock.
"""

from __future__ import annotations

from alembic import context

from service.db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by running the alembic command by hand
    raise RuntimeError("service migrations run through service.db.upgrade_database(engine), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite changes a column by copying the table
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
