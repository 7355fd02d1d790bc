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
