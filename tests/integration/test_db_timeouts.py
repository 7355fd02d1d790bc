"""Database calls are bounded: a black-holed PostgreSQL fails the connect after connect_timeout, a stuck
statement is cancelled after statement_timeout, a session paused inside a transaction loses its locks after the same
bound, and a SQLite writer waits for a lock at most busy_timeout."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from monitor.errors import StoreError
from monitor.store.database import make_engine, ping

pytestmark = pytest.mark.integration


def _within(seconds: float, action: object) -> BaseException | None:
    """Run ``action`` on a thread; fail the test if it is still running after ``seconds``; return its error."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    return errors[0] if errors else None


def test_a_black_holed_postgresql_fails_the_connect_after_the_timeout() -> None:
    with socket.socket() as hole:  # accepts TCP connections in the kernel's backlog, never answers
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        port = hole.getsockname()[1]
        engine = make_engine(f"postgresql+psycopg://u:p@127.0.0.1:{port}/db", connect_timeout_s=1)
        started = time.monotonic()
        error = _within(20, lambda: ping(engine))
        assert isinstance(error, StoreError), error
        print(f"connect gave up after {time.monotonic() - started:.1f} s")
        engine.dispose()


def test_a_stuck_postgresql_statement_is_cancelled_and_url_options_are_kept(pg_url: str) -> None:
    sep = "&" if "?" in pg_url else "?"
    engine = make_engine(f"{pg_url}{sep}options=-csearch_path%3Dpublic", statement_timeout_s=0.5)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "500ms"
            assert conn.execute(text("SHOW search_path")).scalar() == "public"

        def stuck() -> None:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_sleep(30)"))

        error = _within(15, stuck)
        assert isinstance(error, OperationalError) and "statement timeout" in str(error), error
    finally:
        engine.dispose()


def test_a_sqlite_writer_waits_for_the_lock_at_most_the_statement_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    holder = make_engine(url)
    waiter = make_engine(url, statement_timeout_s=0.5)
    with holder.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with holder.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")  # holds the write lock until the block ends

        def write() -> None:
            with waiter.begin() as other:
                other.exec_driver_sql("INSERT INTO t VALUES (2)")

        error = _within(15, write)
        assert isinstance(error, OperationalError) and "locked" in str(error), error
    holder.dispose()
    waiter.dispose()


def test_a_postgresql_session_paused_inside_a_transaction_loses_its_row_locks(pg_url: str) -> None:
    """A zombie (a consumer paused by SIGSTOP or a frozen VM inside its batch transaction) must not hold the offset
    row lock for as long as it stays paused: the server ends its session after the statement timeout, and the
    partition's new owner can write."""
    sep = "&" if "?" in pg_url else "?"
    url = f"{pg_url}{sep}options=-csearch_path%3Dpublic"
    zombie = make_engine(url, statement_timeout_s=1.0)
    heir = make_engine(url, statement_timeout_s=10.0)
    table = f"zombie_{uuid.uuid4().hex[:8]}"
    try:
        with heir.begin() as conn:
            conn.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY, v int)"))
            conn.execute(text(f"INSERT INTO {table} VALUES (1, 0)"))
        paused = zombie.connect()
        paused.execute(text(f"UPDATE {table} SET v = 1 WHERE id = 1"))  # row locked; the client now 'pauses'
        started = time.monotonic()
        with heir.begin() as conn:  # blocks on the lock until the server ends the paused session
            assert conn.execute(text(f"UPDATE {table} SET v = 2 WHERE id = 1")).rowcount == 1
        waited = time.monotonic() - started
        assert waited < 8.0, waited
        with pytest.raises(DBAPIError, match="idle-in-transaction"):  # the zombie, resumed: its session is gone
            paused.execute(text("SELECT 1"))
            paused.commit()
        paused.close()
        with heir.connect() as conn:
            assert conn.execute(text(f"SELECT v FROM {table} WHERE id = 1")).scalar() == 2
    finally:
        with heir.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        zombie.dispose()
        heir.dispose()
