"""`read_wide_csv`: unknown --ignore names and timestamps that go backwards are DataErrors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import DataError
from monitor.ingest.files import read_wide_csv

HEADER = "datetime;a;b;anomaly\n"
ROWS = ["2026-01-01T00:00:00Z;1;2;0\n", "2026-01-01T00:00:01Z;1;2;0\n", "2026-01-01T00:00:02Z;1;2;1\n",
        "2026-01-01T00:00:03Z;1;2;0\n"]


def write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "wide.csv"
    path.write_text(HEADER + "".join(rows))
    return path


def test_an_unknown_ignore_name_is_an_error_listing_missing_and_existing_columns(tmp_path: Path) -> None:
    path = write(tmp_path, ROWS)
    with pytest.raises(DataError) as info:
        read_wide_csv(path, sep=";", time_column="datetime", ignore=["anomly", "a"])
    text = str(info.value)
    assert "['anomly']" in text, "names the missing column (only)"
    assert "'datetime', 'a', 'b', 'anomaly'" in text, "lists the columns that exist"


def test_known_ignore_names_are_dropped_and_missing_ones_allowed_when_told(tmp_path: Path) -> None:
    path = write(tmp_path, ROWS)
    frame = read_wide_csv(path, sep=";", time_column="datetime", ignore=["anomaly"])
    assert list(frame.columns) == ["a", "b"]
    lenient = read_wide_csv(path, sep=";", time_column="datetime", ignore=["anomaly", "changepoint"],
                            ignore_missing_ok=True)
    assert list(lenient.columns) == ["a", "b"]


def test_an_unknown_time_column_is_an_error_listing_the_columns(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no time column 'timestamp'.*'datetime'"):
        read_wide_csv(write(tmp_path, ROWS), sep=";", ignore=["anomaly"])


def test_a_timestamp_going_backwards_is_an_error_naming_its_line(tmp_path: Path) -> None:
    rows = [ROWS[0], ROWS[2], ROWS[1], ROWS[3]]  # data row 3 (line 4, header = line 1) goes back in time
    with pytest.raises(DataError) as info:
        read_wide_csv(write(tmp_path, rows), sep=";", time_column="datetime", ignore=["anomaly"])
    text = str(info.value)
    assert "line 4" in text and "line 3" in text and "goes backwards" in text
    assert "00:00:01" in text, "shows the offending timestamp"


def test_equal_timestamps_are_kept_in_file_order(tmp_path: Path) -> None:
    rows = [ROWS[0], ROWS[1], ROWS[1].replace(";1;2;", ";5;6;"), ROWS[3]]
    frame = read_wide_csv(write(tmp_path, rows), sep=";", time_column="datetime", ignore=["anomaly"])
    assert frame["a"].tolist() == [1, 1, 5, 1]
    assert frame.index.is_monotonic_increasing
