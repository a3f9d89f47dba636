"""Alembic migrations of the service's database; :func:`service.db.upgrade_database` runs them."""
