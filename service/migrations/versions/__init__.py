"""Alembic revisions, oldest first: ``0001`` is the schema as first released, each later one a change."""
