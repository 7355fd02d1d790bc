"""Shadow mode's parts: the counts, the per-consumer report in the database (SQLite), the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine as DbEngine
from typer.testing import CliRunner

from monitor.commands.app import app
from monitor.core.engine import Engine
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.registry import shadow, versions
from monitor.settings import AlertSettings, ThresholdSettings
from monitor.store.database import init_schema, make_engine
from pipelines.synthetic import normal_series
from tests.unit.helpers import records_of

THRESH, ALERT = ThresholdSettings(), AlertSettings(min_hits=2, min_normal=2)


def _twin(bundle: ModelBundle, version: str, log_shift: float) -> ModelBundle:
    """The same network with a calibration ``log_shift`` higher: a less sensitive model (it alerts less)."""
    cal = dataclasses.replace(bundle.meta.calibration,
                              log_score_mean=bundle.meta.calibration.log_score_mean + log_shift, tail={})
    return ModelBundle(bundle.module, bundle.scaler, dataclasses.replace(bundle.meta, version=version, calibration=cal))


@pytest.fixture
def db(sqlite_db: DbEngine) -> DbEngine:
    return sqlite_db


def test_the_shadow_counts_where_its_decisions_differ_and_writes_one_row_per_consumer(
    tiny_bundle: ModelBundle, db: DbEngine
) -> None:
    wl, n = tiny_bundle.meta.window_len, len(tiny_bundle.meta.channels)
    values = normal_series(80 * wl, n, seed=9)
    values[50 * wl : 56 * wl] += 6 * values.std(axis=0)  # a shift both should see
    recs = records_of(tiny_bundle, values, sensor_id="s1")
    active = Engine(Scorer(tiny_bundle), THRESH, ALERT)
    deaf = _twin(tiny_bundle, "deaf", log_shift=50.0)  # never alerts
    clock = [0.0]
    judge = shadow.Shadow(db, "m", deaf, THRESH, ALERT, flush_s=10.0, consumer="host:1", clock=lambda: clock[0])
    for first in range(0, len(recs), 20):
        outcome = active.process(recs[first : first + 20])
        judge.observe(outcome.decisions, "tiny-1")
    c = judge.counts
    assert c.windows == len(recs) and c.opened_shadow == 0 and c.both == 0
    assert c.opened_active >= 1 and c.only_active >= 1
    assert shadow.summary(db, "m", "deaf") is None  # not flushed yet: the clock has not moved
    clock[0] = 11.0
    judge.observe(active.process(records_of(tiny_bundle, normal_series(wl, n, seed=10), sensor_id="s2")).decisions,
                  "tiny-1")
    report = shadow.summary(db, "m", "deaf")
    assert report is not None and report.counts["windows"] == len(recs) + 1 and report.consumers == 1
    other = shadow.Shadow(db, "m", deaf, THRESH, ALERT, consumer="host:2")
    other.observe(active.process(records_of(tiny_bundle, normal_series(2 * wl, n, seed=11), sensor_id="s3")).decisions,
                  "tiny-1")
    other.flush()
    summed = shadow.summary(db, "m", "deaf")
    assert summed is not None and summed.consumers == 2 and summed.counts["windows"] == len(recs) + 3
    assert "only the active" in summed.line()


@pytest.fixture
def registry(tmp_path: Path, tiny_bundle: ModelBundle, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    db = make_engine(url)
    init_schema(db)
    versions.register(db, "default", tiny_bundle)
    versions.promote(db, "default", tiny_bundle.meta.version, by="t", reason="t")
    versions.register(db, "default", _twin(tiny_bundle, "tiny-2", 0.1))
    monkeypatch.setenv("MONITOR_DB__URL", url)
    return url


def test_models_shadow_show_and_a_promotion_that_needs_a_shadow_period(
    registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = CliRunner()
    assert cli.invoke(app, ["models", "shadow"]).exit_code == 2  # neither a version nor --stop
    done = cli.invoke(app, ["models", "shadow", "tiny-2"])
    assert done.exit_code == 0 and "tiny-2 is the shadow" in done.stdout
    assert cli.invoke(app, ["models", "shadow", "tiny-1"]).exit_code == 2  # the active one cannot be its own shadow
    shown = json.loads(cli.invoke(app, ["models", "show", "tiny-2"]).stdout)
    assert shown["shadow"] == {"now": True}  # no consumer reported yet
    refused = cli.invoke(app, ["models", "promote", "tiny-2"])  # the default asks for a shadow period
    assert refused.exit_code == 2 and "shadowed over 0 windows, fewer than registry.shadow_min_windows=1000" in \
        refused.stderr
    monkeypatch.setenv("MONITOR_REGISTRY__SHADOW_MIN_WINDOWS", "100")
    refused = cli.invoke(app, ["models", "promote", "tiny-2"])
    assert refused.exit_code == 2 and "shadowed over 0 windows, fewer than registry.shadow_min_windows=100" in \
        refused.stderr
    monkeypatch.setenv("MONITOR_REGISTRY__SHADOW_MIN_WINDOWS", "0")
    assert versions.pointer(make_engine(registry), "default")[0] != "tiny-2"
    forced = cli.invoke(app, ["models", "promote", "tiny-2", "--force"])
    assert forced.exit_code == 0, forced.output
    db = make_engine(registry)
    assert versions.pointer(db, "default") == ("tiny-2", None)
    assert cli.invoke(app, ["models", "shadow", "--stop"]).exit_code == 0


def test_the_first_model_of_a_name_needs_no_shadow_period_a_replacement_does(
    tmp_path: Path, tiny_bundle: ModelBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'first.db'}"
    db = make_engine(url)
    init_schema(db)
    versions.register(db, "default", tiny_bundle)
    monkeypatch.setenv("MONITOR_DB__URL", url)
    cli = CliRunner()
    first = cli.invoke(app, ["models", "promote", tiny_bundle.meta.version])  # nothing active to compare it with
    assert first.exit_code == 0, first.output
    assert versions.pointer(db, "default") == (tiny_bundle.meta.version, None)
    again = cli.invoke(app, ["models", "promote", tiny_bundle.meta.version])
    assert again.exit_code == 2 and "already active" in again.stderr and "shadow" not in again.stderr
    versions.register(db, "default", _twin(tiny_bundle, "tiny-2", 0.1))
    refused = cli.invoke(app, ["models", "promote", "tiny-2"])
    assert refused.exit_code == 2 and "`monitor models shadow tiny-2` first" in refused.stderr
    assert versions.pointer(db, "default") == (tiny_bundle.meta.version, None)


def test_models_runs_lists_every_retraining_run_with_its_outcome(
    registry: str, tmp_path: Path, tiny_history: object
) -> None:
    from monitor.settings import Settings
    from monitor.training.retrain import RetrainConfig, RetrainRequest, retrain
    from tests.unit.conftest import TINY

    settings = Settings()
    cfg = RetrainConfig(settings.kafka, TINY.model_copy(update={"epochs": 2}), settings.threshold, settings.alert,
                        settings.retrain.model_copy(update={"min_windows": 8, "min_holdout_windows": 4}),
                        settings.registry)
    tiny_history.to_csv(tmp_path / "h.csv")  # type: ignore[attr-defined]
    db = make_engine(registry)
    outcome = retrain(db, cfg, RetrainRequest(path=tmp_path / "h.csv", reason="a test run"))
    listed = CliRunner().invoke(app, ["models", "runs"])
    assert listed.exit_code == 0, listed.output
    line = listed.stdout.splitlines()[1]
    assert outcome.outcome in line and "cli" in line
    full = json.loads(CliRunner().invoke(app, ["models", "runs", "--json"]).stdout)
    assert full[0]["outcome"] == outcome.outcome and full[0]["trigger_reason"] == "a test run"
    assert full[0]["report"]["counts"]["windows"] == outcome.counts["windows"]


def test_a_complete_shadow_period_promotes_a_quiet_shadow_and_rejects_a_noisy_one(
    tiny_bundle: ModelBundle, db: DbEngine
) -> None:
    versions.register(db, "m", tiny_bundle)
    versions.promote(db, "m", "tiny-1", by="t", reason="t")
    passed = {"gate": {"passed": True}}
    for version in ("quiet", "noisy", "deaf"):
        versions.register(db, "m", _twin(tiny_bundle, version, 0.0), metrics=passed)
    versions.register(db, "m", _twin(tiny_bundle, "ungated", 0.0))  # imported by hand: no gate passed

    def report(version: str, windows: int, opened_active: int, opened_shadow: int, active: str = "tiny-1",
               **counts: int) -> None:
        judge = shadow.Shadow(db, "m", _twin(tiny_bundle, version, 0.0), THRESH, ALERT,
                              consumer=f"c-{version}-{windows}")
        judge.active_version = active
        judge.counts = shadow.ShadowCounts(windows=windows, opened_active=opened_active, opened_shadow=opened_shadow,
                                           **counts)
        judge.flush()

    versions.set_shadow(db, "m", "quiet", by="t")
    assert shadow.settle(db, "m", 0, by="s") is None  # no shadow period asked for
    report("quiet", 40, 3, 2)
    assert shadow.settle(db, "m", 100, by="s") is None  # period not complete
    report("quiet", 70, 1, 1)
    done = shadow.settle(db, "m", 100, by="s")
    assert done is not None and done.startswith("promoted m/quiet")
    assert versions.pointer(db, "m") == ("quiet", None)

    versions.set_shadow(db, "m", "noisy", by="t")
    report("noisy", 150, 0, 4, active="tiny-1")  # measured against a model no longer active: not counted
    assert shadow.settle(db, "m", 100, by="s") is None
    report("noisy", 120, 0, 4, active="quiet")
    done = shadow.settle(db, "m", 100, by="s")
    assert done is not None and done.startswith("rejected m/noisy")
    assert versions.pointer(db, "m") == ("quiet", None)
    assert versions.get(db, "m", "noisy").status == versions.REJECTED

    # a deaf shadow (silent where the active model alerted) is never promoted unattended
    versions.set_shadow(db, "m", "deaf", by="t")
    report("deaf", 200, 2, 0, active="quiet", both=0, only_active=12)
    done = shadow.settle(db, "m", 100, by="s")
    assert done is not None and done.startswith("rejected m/deaf")
    # a shadow that did not pass the gate waits for an operator
    versions.set_shadow(db, "m", "ungated", by="t")
    report("ungated", 500, 1, 1, active="quiet")
    assert shadow.settle(db, "m", 100, by="s") is None and versions.pointer(db, "m") == ("quiet", "ungated")
    versions.set_shadow(db, "m", None, by="t")
    # as many alerts opened, but more windows in an alert that the active model had not: rejected too
    versions.register(db, "m", _twin(tiny_bundle, "sticky", 0.0), metrics=passed)
    versions.set_shadow(db, "m", "sticky", by="t")
    report("sticky", 200, 2, 2, active="quiet", only_active=3, only_shadow=9)
    done = shadow.settle(db, "m", 100, by="s")
    assert done is not None and done.startswith("rejected m/sticky")


def test_a_promotion_takes_no_shadow_context_of_a_sensor_the_active_model_held_in_an_alert(
    tiny_bundle: ModelBundle, db: DbEngine
) -> None:
    wl, n = tiny_bundle.meta.window_len, len(tiny_bundle.meta.channels)
    calm = records_of(tiny_bundle, normal_series(30 * wl, n, seed=21), sensor_id="calm")
    values = normal_series(30 * wl, n, seed=22)
    values[20 * wl : 26 * wl] += 8 * values.std(axis=0)
    faulty = records_of(tiny_bundle, values, sensor_id="faulty")
    active = Engine(Scorer(tiny_bundle), THRESH, ALERT)
    judge = shadow.Shadow(db, "m", _twin(tiny_bundle, "deaf", 50.0), THRESH, ALERT, consumer="w")  # judges all normal
    judge.observe(active.process(calm + faulty).decisions, "tiny-1")
    assert judge.engine.sensors.keys() == {"calm", "faulty"}
    assert judge.warmed().keys() == {"calm"} and judge.alerted == {"faulty"}
