"""Alembic migrations of the location tables (``centrex db init`` runs them).

They ship inside the package and are run programmatically by
``centrex.registrar.sql.schema``; ``env.py`` takes the connection from
``config.attributes["connection"]``.
"""
