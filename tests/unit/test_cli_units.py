"""Small pure helpers of the CLI."""

from __future__ import annotations

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


def test_train_says_which_event_channels_never_moved_in_the_history(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`monitor train` on the taxonomy's ``commands`` base (``event_c`` never used in the history) lists the event
    channels as neither judged nor fed to the model, and names ``event_c`` as constant in every training row;
    with ``model.mute_events`` off it says they are inputs."""
    from typer.testing import CliRunner

    from monitor.commands.app import app
    from pipelines.bench.taxonomy import generate

    series = generate("clean_commands", 0, quick=True)
    csv = tmp_path / "commands.csv"
    series.frame.iloc[: series.train_rows].rename_axis("timestamp").to_csv(csv)
    tiny = {"MONITOR_MODEL__HIDDEN_SIZE": "8", "MONITOR_MODEL__LATENT_SIZE": "4", "MONITOR_MODEL__THREADS": "1",
            "MONITOR_MODEL__STRIDE": "2"}
    said: dict[str, list[str]] = {}
    for mute in ("true", "false"):
        result = CliRunner().invoke(app, ["train", str(csv), "--out", str(tmp_path / "m.pt"), "--epochs", "2",
                                          "--window-len", "16"], env={**tiny, "MONITOR_MODEL__MUTE_EVENTS": mute})
        assert result.exit_code == 0, result.output
        said[mute] = [line for line in result.output.splitlines() if "event channels" in line or "constant in" in line]
    assert said["true"][0].startswith("event channels (not judged, not fed to the model") and said["true"][0].endswith(
        ": event_a, event_b, event_c"), said
    assert said["true"][1].strip().startswith("of them constant in every training row") and said["true"][1].endswith(
        ": event_c"), said
    assert said["false"][0].startswith("event channels (inputs only, not judged"), said
