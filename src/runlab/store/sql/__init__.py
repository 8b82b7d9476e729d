"""The SQL store: SQLite (embedded) or PostgreSQL (server), through SQLAlchemy Core."""
