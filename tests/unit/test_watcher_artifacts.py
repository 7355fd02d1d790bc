"""The hot-swap watcher and a damaged promoted artifact (registry on an embedded SQLite file): the serving model
keeps serving, the refusal is logged once with its reason and counted, and a later sound promotion swaps in."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from monitor.errors import ArtifactError
from monitor.registry import versions
from monitor.registry.versions import _T as MODEL_VERSIONS
from monitor.registry.watcher import ModelWatcher
from tests.unit.artifacts import crafted, small_bundle


def _refused() -> float:
    return REGISTRY.get_sample_value("monitor_model_swaps_refused_total") or 0.0


def _store(db: Engine, version: str, data: bytes) -> None:
    """Register ``version`` with the bytes ``data`` (their SHA-256 recorded, as a crafted import would)."""
    versions.register(db, "m", small_bundle(version))
    with db.begin() as conn:
        conn.execute(MODEL_VERSIONS.update().where(MODEL_VERSIONS.c.version == version)
                     .values(artifact=data, sha256=hashlib.sha256(data).hexdigest()))


def _without_digest(meta: dict[str, Any]) -> None:
    del meta["weights_sha256"]


def _nan_weight(state: dict[str, Any]) -> None:
    state["to_output.bias"][0] = float("nan")


@pytest.mark.parametrize(("damage", "reason"), [
    ({"meta": _without_digest}, "no weights_sha256"),
    ({"meta": lambda m: m["calibration"].pop("log_score_mean") and None}, "lacks the fields ['log_score_mean']"),
    ({"meta": lambda m: m.update(hidden_size="4")}, "hidden_size must be int, not str"),
    ({"state": _nan_weight}, "to_output.bias holds NaN"),
    ({"state": lambda s: {**s, "to_output.bias": "x"}}, "not a dense tensor"),
    ({"payload": lambda p: {**p, "state_dict": None}}, "state_dict is null"),
])
def test_a_damaged_promotion_keeps_the_serving_model(
    sqlite_db: Engine, caplog: pytest.LogCaptureFixture, damage: dict[str, Any], reason: str
) -> None:
    db = sqlite_db
    versions.register(db, "m", small_bundle("v1"))
    versions.promote(db, "m", "v1", by="test", reason="first")
    serving = versions.load_bundle(db, "m", "v1")
    now = [0.0]
    watcher = ModelWatcher(db, "m", "v1", serving=serving.meta, check_interval_s=1.0, clock=lambda: now[0])
    _store(db, "v2", crafted(small_bundle("v2"), **damage))
    with pytest.raises(ArtifactError, match="registry:m/v2"):
        versions.load_bundle(db, "m", "v2")  # what the consumer would have met
    versions.promote(db, "m", "v2", by="test", reason="damaged")
    before = _refused()

    with caplog.at_level(logging.ERROR, logger="monitor.registry.watcher"):
        for _ in range(3):
            now[0] += 2.0
            assert watcher.poll() is None
    assert watcher.current_version == "v1" and watcher.serving.version == "v1"
    errors = [r.getMessage() for r in caplog.records if r.name == "monitor.registry.watcher"]
    assert len(errors) == 1, errors  # reported once, not at every check
    assert "v2" in errors[0] and reason in errors[0] and "keeps serving" in errors[0]
    assert _refused() == before + 1
    assert watcher.problem is not None and reason in watcher.problem

    versions.register(db, "m", small_bundle("v3"))
    versions.promote(db, "m", "v3", by="test", reason="sound")
    now[0] += 2.0
    swapped = watcher.poll()
    assert swapped is not None and swapped.meta.version == "v3" and watcher.problem is None
