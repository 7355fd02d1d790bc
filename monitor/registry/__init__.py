"""Model registry in the SQL database: versions, the atomic active pointer, and the hot-swap watcher."""
