"""SQLite: the embedded default, one file (see store/__init__.py for the files of a database)."""
