"""The SQL store's errors, importable without SQLAlchemy.

``centrex serve`` catches these whatever store it runs; in memory mode the
database libraries are never imported (they are a third of the process's
memory at start, docs/benchmarks.md).
"""


class DatabaseUrlError(ValueError):
    """A database URL this store cannot use, with what is expected."""


class DuplicateInstanceError(RuntimeError):
    """Another running instance uses this instance's id."""


class DatabaseUnavailableError(RuntimeError):
    """The database could not be reached or used at start; the message says why."""


class SchemaError(RuntimeError):
    """The database's schema is missing or not the one this version of centrex uses."""
