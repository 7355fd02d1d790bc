"""Small pure helpers of the CLI."""

from __future__ import annotations

import pandas as pd
import pytest

from monitor.commands.app import threads_warning


@pytest.mark.parametrize("policy", ["PASSIVE", "passive"])
def test_more_than_one_torch_thread_with_sleeping_workers_is_warned(policy: str) -> None:
    warning = threads_warning(2, policy)
    assert warning is not None and "model.threads=2" in warning and "process per core" in warning


@pytest.mark.parametrize(("threads", "policy"), [(0, "PASSIVE"), (1, "PASSIVE"), (2, "ACTIVE"), (4, None)])
def test_no_warning_for_one_thread_or_spinning_workers(threads: int, policy: str | None) -> None:
    assert threads_warning(threads, policy) is None


def test_retrain_help_shows_the_parquet_extra_verbatim() -> None:
    from typer.testing import CliRunner

    from monitor.commands.app import app

    result = CliRunner().invoke(app, ["retrain", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "pip install 'sensor-monitor[parquet]'" in result.output, result.output


def test_train_names_the_channels_that_move_by_steps(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`monitor train` on the pump base says that the pump count and the flow move by steps (never re-centred as
    drifting) and that the pressure does not."""
    from typer.testing import CliRunner

    from monitor.commands.app import app
    from pipelines.bench.taxonomy import generate

    series = generate("clean_quantised", 0, quick=True)
    csv = tmp_path / "pumps.csv"
    series.frame.iloc[: series.train_rows].rename_axis("timestamp").to_csv(csv)
    env = {"MONITOR_MODEL__HIDDEN_SIZE": "8", "MONITOR_MODEL__LATENT_SIZE": "4", "MONITOR_MODEL__THREADS": "1"}
    result = CliRunner().invoke(app, ["train", str(csv), "--out", str(tmp_path / "m.pt"), "--epochs", "2"], env=env)
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if line.startswith("channels that move by steps")]
    assert said and said[0].endswith(": pumps, flow"), result.output


def test_train_names_its_event_channels_and_the_channels_it_weighted_down(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`monitor train` on a sensor beside sparse on/off event channels says which channels are inputs only
    (model.event_share) and which got a weight below 1 (model.tail_balance), and 'none' when both are off."""
    from typer.testing import CliRunner

    from monitor.commands.app import app
    from pipelines.bench.taxonomy import generate

    series = generate("clean_events", 0, quick=True)
    csv = tmp_path / "events.csv"
    series.frame.iloc[: series.train_rows].rename_axis("timestamp").to_csv(csv)
    tiny = {"MONITOR_MODEL__HIDDEN_SIZE": "8", "MONITOR_MODEL__LATENT_SIZE": "4", "MONITOR_MODEL__THREADS": "1",
            "MONITOR_MODEL__STRIDE": "2"}
    said: dict[tuple[str, str], list[str]] = {}
    for share, balance in (("0.1", "0.99"), ("0", "0.99"), ("0", "0")):
        env = {**tiny, "MONITOR_MODEL__EVENT_SHARE": share, "MONITOR_MODEL__TAIL_BALANCE": balance}
        result = CliRunner().invoke(app, ["train", str(csv), "--out", str(tmp_path / "m.pt"), "--epochs", "4",
                                          "--window-len", "16"], env=env)
        assert result.exit_code == 0, result.output
        said[share, balance] = [line for line in result.output.splitlines()
                                if line.startswith(("event channels", "channels with event-like"))]
    assert said["0.1", "0.99"][0].endswith("event_a, event_b, event_c"), said
    assert said["0", "0.99"][0].endswith(": none") and "event_" in said["0", "0.99"][1], said
    assert "sensor" not in said["0", "0.99"][1], said
    assert all(line.endswith(": none") for line in said["0", "0"]), said


def _tiny_train_output(csv, out, env: dict[str, str]) -> list[str]:  # type: ignore[no-untyped-def]
    """The lines `monitor train` prints for ``csv`` with a tiny model (2 epochs, windows of 16) and ``env``."""
    from typer.testing import CliRunner

    from monitor.commands.app import app

    tiny = {"MONITOR_MODEL__HIDDEN_SIZE": "8", "MONITOR_MODEL__LATENT_SIZE": "4", "MONITOR_MODEL__THREADS": "1",
            "MONITOR_MODEL__STRIDE": "2"}
    result = CliRunner().invoke(app, ["train", str(csv), "--out", str(out), "--epochs", "2", "--window-len", "16"],
                                env={**tiny, **env})
    assert result.exit_code == 0, result.output
    return list(result.output.splitlines())


def test_train_says_which_event_channels_never_moved_in_the_history(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`monitor train` on the taxonomy's ``commands`` base (``event_c`` never used in the history) lists the event
    channels as neither judged nor fed to the model, and names ``event_c`` as constant in every training row;
    with ``model.mute_events`` off it says they are inputs."""
    from pipelines.bench.taxonomy import generate

    series = generate("clean_commands", 0, quick=True)
    csv = tmp_path / "commands.csv"
    series.frame.iloc[: series.train_rows].rename_axis("timestamp").to_csv(csv)
    said = {mute: [line for line in _tiny_train_output(csv, tmp_path / "m.pt", {"MONITOR_MODEL__MUTE_EVENTS": mute})
                   if "event channels" in line or "constant in" in line] for mute in ("true", "false")}
    assert said["true"][0].startswith("event channels (not judged, not fed to the model") and said["true"][0].endswith(
        ": event_a, event_b, event_c"), said
    assert said["true"][1].strip().startswith("of them constant in every training row") and said["true"][1].endswith(
        ": event_c"), said
    assert said["false"][0].startswith("event channels (inputs only, not judged"), said


def test_train_names_the_rows_its_history_screen_left_out(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`monitor train` on a history with two spikes and one lasting incident names each spiked row and its
    channel, and the incident's channel, rows and lift (model.history_screen); with the screen off it says nothing
    of the kind."""
    from pipelines.bench.taxonomy import generate

    series = generate("clean_noise", 0, quick=True)
    frame = series.frame.iloc[: series.train_rows].copy()
    frame.iloc[200:202, 0] += 30.0
    frame.iloc[700, 0] -= 30.0
    frame.iloc[400:472, 0] += 5.0  # 6 hours 5 SDs high
    csv = tmp_path / "spiked.csv"
    frame.rename_axis("timestamp").to_csv(csv)
    said = {screen: [line for line in _tiny_train_output(csv, tmp_path / "m.pt",
                                                         {"MONITOR_MODEL__HISTORY_SCREEN": screen})
                     if "history_screen" in line] for screen in ("8", "0")}
    times = [frame.index[i].isoformat() for i in (200, 201, 700)]
    assert said["8"][0] == (f"rows left out of the fit as anomalies of the history (spikes, bursts; "
                            f"model.history_screen): 3: {times[0]} value; {times[1]} value; {times[2]} value"), said
    incident = ("lasting incidents of the history left out of the fit (a level entered and left once that no other "
                "channel explains; model.history_screen): 1: value ")
    assert said["8"][1].startswith(incident), said
    span, lift = said["8"][1][len(incident):].rsplit(" (", 1)
    start, end = (pd.Timestamp(t) for t in span.split(" .. "))
    assert abs(start - frame.index[400]) <= pd.Timedelta(minutes=50), span
    assert abs(end - frame.index[471]) <= pd.Timedelta(minutes=50), span
    assert 4.0 < float(lift.rstrip(")")) < 6.0, lift
    assert said["8"][2:] == ["channels whose recurring spikes are their normal behaviour (removed before scoring, up "
                             "to the size given; model.history_screen): none"], said  # two bursts: not a habit
    assert said["0"] == [], said


def test_backtest_names_the_rows_its_history_screen_left_out(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`monitor backtest --train-rows N` (the first part of a stream as its history) says which rows of that part
    the screen left out of the fit."""
    from typer.testing import CliRunner

    from monitor.commands.app import app
    from pipelines.bench.taxonomy import generate

    series = generate("clean_noise", 0, quick=True)
    frame = series.frame.copy()
    frame.iloc[300:302, 0] += 30.0
    csv = tmp_path / "stream.csv"
    frame.rename_axis("timestamp").to_csv(csv)
    env = {"MONITOR_MODEL__HIDDEN_SIZE": "8", "MONITOR_MODEL__LATENT_SIZE": "4", "MONITOR_MODEL__THREADS": "1",
           "MONITOR_MODEL__EPOCHS": "2", "MONITOR_MODEL__WINDOW_LEN": "16", "MONITOR_MODEL__STRIDE": "2"}
    result = CliRunner().invoke(app, ["backtest", str(csv), "--out", str(tmp_path / "bt.csv"), "--train-rows",
                                      str(series.train_rows)], env=env)
    assert result.exit_code == 0, result.output
    times = [frame.index[i].isoformat() for i in (300, 301)]
    assert (f"rows left out of the fit as anomalies of the history (spikes, bursts; model.history_screen): 2: "
            f"{times[0]} value; {times[1]} value") in result.output.splitlines(), result.output



def test_train_says_which_cycles_it_removed_and_with_how_many_harmonics(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`monitor train` on the schedule base (a load switched on and off daily) says that it removes a daily profile
    of more than six harmonics; the helper says 'none' for a model without a profile."""
    from monitor.commands.app import cycles_line
    from pipelines.bench.taxonomy import generate

    assert cycles_line({}) == cycles_line(None) == "none"
    assert cycles_line({"periods": [86400.0, 604800.0], "harmonics": [72, 6]}) == (
        "daily (72 harmonics), weekly (6 harmonics)")
    assert cycles_line({"periods": [86400.0], "harmonics": [72], "phase": [None, {"period": 86400.0, "table": [0.0]}]}
                       ) == "daily (72 harmonics, a per-phase table on 1 channel)"
    from monitor.commands.app import spikes_line

    assert spikes_line(["a", "cpu"], [0.0, 83.66]) == "cpu (up to 83.7)"
    assert spikes_line(["a"], []) == spikes_line(["a"], [0.0]) == "none"
    series = generate("clean_schedule", 0, quick=True)
    csv = tmp_path / "load.csv"
    series.frame.iloc[: series.train_rows].rename_axis("timestamp").to_csv(csv)
    said = [line for line in _tiny_train_output(csv, tmp_path / "m.pt", {})
            if line.startswith("cycles removed before the model")]
    assert said and said[0].endswith(": daily (72 harmonics)"), said


def test_train_names_the_channels_whose_recurring_steps_it_scores_against_the_historys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`monitor train` on a sensor that steps between two modes again and again names it with the steps its move
    allowance covers, in the sensor's units; the helper says 'none' without one."""
    from monitor.commands.app import moves_line
    from tests.unit.test_moves import HISTORY, _telemetry

    assert moves_line(["a", "valve"], [0.5, 1.0], [0.0, 7.0], [1.0, 40.0], [2.0, 0.1]) == "valve (steps of 0.1 to 0.7)"
    assert moves_line(["a"], [], [], [], [1.0]) == "none"
    from typer.testing import CliRunner

    from monitor.commands.app import app

    csv = tmp_path / "telemetry.csv"
    _telemetry(0).iloc[:HISTORY].rename_axis("timestamp").to_csv(csv)
    result = CliRunner().invoke(app, ["train", str(csv), "--out", str(tmp_path / "m.pt")],
                                env={"MONITOR_MODEL__THREADS": "1"})  # the default model: a tiny one steps badly too
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if line.startswith("channels whose recurring steps")]
    assert len(said) == 1 and said[0].endswith(")") and ": sensor (steps of " in said[0], said
    low, high = (float(v) for v in said[0].split("steps of ")[1].rstrip(")").split(" to "))
    assert 0 < low < 0.6 < high, said  # the excursions are steps of 0.6
