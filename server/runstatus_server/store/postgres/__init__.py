"""PostgreSQL: several servers on one database (see store/__init__.py for the files of a database)."""
