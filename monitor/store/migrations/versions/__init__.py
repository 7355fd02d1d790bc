"""Revisions, oldest first by their ``down_revision`` chain (file names are numbered for reading only)."""
