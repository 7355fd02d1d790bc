"""The one error tree (monitor/errors.py) and its one mapping to HTTP answers and exit codes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from monitor import errors
from monitor.errors import (
    ApiError,
    ArtifactError,
    BrokerError,
    ConfigError,
    ConflictError,
    DataError,
    MonitorError,
    NotFoundError,
    PromotionConflict,
    StaleOffsetError,
    StaleStateError,
    StoreError,
    StoreRejectedError,
    exit_code,
    http_answer,
)

PACKAGE = Path(errors.__file__).parent
# exceptions defined elsewhere on purpose: a kafka-python timeout kafka-python itself must recognise, and a private
# signal of the request guard that never leaves it
OUTSIDE_THE_TREE = {("monitor/ingest/netguard.py", "NetWaitStalled"), ("monitor/api/guard.py", "_BodyTooLarge")}


def _tree() -> list[type[MonitorError]]:
    found, todo = [], [MonitorError]
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return found


@pytest.mark.parametrize(("exc", "status", "code"), [
    (NotFoundError("alert 7"), 404, "not_found"),
    (ConflictError("resolved"), 409, "conflict"),
    (PromotionConflict("moved"), 409, "conflict"),
    (StoreError("down"), 503, "database_unavailable"),
    (StoreRejectedError("refused"), 503, "database_unavailable"),
    (StaleStateError("s1"), 503, "database_unavailable"),
    (BrokerError("down"), 503, "broker_unavailable"),
    (ConfigError("bad"), 422, "invalid_request"),
    (DataError("short"), 422, "invalid_request"),
    (ArtifactError("corrupt"), 500, "internal_error"),
    (ApiError(401, "unauthorized", "no key"), 401, "unauthorized"),
    (ApiError(503, "busy", "slots"), 503, "busy"),
])
def test_each_error_has_one_http_answer_and_one_exit_code(exc: MonitorError, status: int, code: str) -> None:
    assert http_answer(exc) == (status, code)
    assert exit_code(exc) == 2


def test_every_error_of_the_tree_is_mapped() -> None:
    for kind in _tree():
        sample = kind(418, "x", "y") if issubclass(kind, ApiError) else kind("y")
        status, code = http_answer(sample)
        assert 400 <= status < 600 and code, kind
        assert exit_code(sample) == 2
    assert issubclass(StaleOffsetError, StoreError) and not StaleOffsetError.retriable
    assert issubclass(NotFoundError, StoreError) and not NotFoundError.retriable


def test_no_module_defines_an_error_outside_the_tree() -> None:
    outside = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                (b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "").endswith(
                    ("Error", "Exception", "Conflict")) for b in node.bases):
                outside.add((path.relative_to(PACKAGE.parent).as_posix(), node.name))
    assert outside == OUTSIDE_THE_TREE
