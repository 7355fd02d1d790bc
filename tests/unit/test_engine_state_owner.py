"""The engine owns its sensors' state: adapters load it, read what to store and mark it stored through its methods
(Engine.load, rows, stored, drop, orders, revision, held), never through ``engine.sensors``."""

from __future__ import annotations

import re
from pathlib import Path

from monitor.core.engine import Engine
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.settings import AlertSettings, ThresholdSettings
from pipelines.synthetic import normal_series
from tests.unit.helpers import records_of

PACKAGE = Path(__file__).resolve().parents[2] / "monitor"


def test_no_module_but_the_engine_touches_its_sensors() -> None:
    touching = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                      if p.name != "engine.py" and re.search(r"\.sensors\b", p.read_text()))
    assert touching == []


def test_rows_stored_load_and_drop_round_trip(tiny_bundle: ModelBundle) -> None:
    engine = Engine(Scorer(tiny_bundle), ThresholdSettings(), AlertSettings())
    records = records_of(tiny_bundle, normal_series(tiny_bundle.meta.window_len * 6, len(tiny_bundle.meta.channels),
                                                    seed=3))
    outcome = engine.process(records[:3])
    rows = Engine.rows(outcome)
    assert [r.sensor_id for r in rows] == ["s1"] and rows[0].revision is None  # never stored yet
    Engine.stored(outcome)
    assert engine.revision("s1") == 0
    again = Engine.rows(engine.process(records[3:4]))
    assert again[0].revision == 0  # grew from the stored revision
    order = engine.orders()["s1"]
    engine.drop(["s1"])
    assert engine.missing(records[4:5]) == ["s1"] and "s1" not in engine.held()
    engine.load({"s1": again[0]})
    assert engine.revision("s1") == 0 and engine.orders()["s1"] == order
    restored = Engine.rows(engine.process(records[4:5]))[0]
    fresh = Engine(Scorer(tiny_bundle), ThresholdSettings(), AlertSettings())
    straight = Engine.rows(fresh.process(records[:5]))[0]
    assert restored.state == straight.state  # a state loaded back decides as if it had never left
