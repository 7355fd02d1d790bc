"""SQL storage adapter (SQLAlchemy 2): schema, engine creation, batch commits and queries."""
