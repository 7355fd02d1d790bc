"""Alembic migrations of the monitor's database (script location ``monitor:migrations``).

Every schema change ships as a revision in ``versions/``; `monitor db upgrade` applies them and the services
refuse to start on an out-of-date schema. A new revision: change ``monitor/store/schema.py``, then run
``python -m monitor db revision -m "what changed"`` from the repository root and review the file it writes.
"""
