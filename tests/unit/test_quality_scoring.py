"""Scoring helpers of `make bench-quality` on hand-made arrays: found/delay, false alerts, ratios, the last line."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import pytest

from pipelines.bench.quality import parse_legs, quality_line
from pipelines.bench.taxonomy_score import (
    alert_openings,
    false_alerts,
    headline,
    judge_spans,
    score_series,
    summarise,
    threshold_ratios,
)

TIMES = pd.date_range("2026-01-05", periods=40, freq="5min", tz="UTC")


def flags(*rows: int, n: int = 40) -> np.ndarray:
    f = np.zeros(n, dtype=np.int8)
    f[list(rows)] = 1
    return f


def test_alert_openings_are_rising_edges() -> None:
    assert alert_openings(np.array([0, 1, 1, 0, 1])).tolist() == [1, 4]
    assert alert_openings(np.array([1, 1, 0])).tolist() == [0]
    assert alert_openings(np.zeros(5)).tolist() == []


def test_span_found_inside_or_within_grace_and_its_delay() -> None:
    (o,) = judge_spans(flags(13, 14), TIMES, [(10, 15)], grace=4)
    assert o.found and o.delay_rows == 3 and o.delay_min == 15.0
    (o,) = judge_spans(flags(18), TIMES, [(10, 15)], grace=4)  # 15 + 4 = 19 exclusive: row 18 is in grace
    assert o.found and o.delay_rows == 8
    (o,) = judge_spans(flags(19, 20), TIMES, [(10, 15)], grace=4)
    assert not o.found and o.delay_rows is None
    (o,) = judge_spans(flags(9), TIMES, [(10, 15)], grace=4)  # an alert that ended before the span
    assert not o.found


def test_delay_minutes_follow_irregular_times() -> None:
    times = pd.DatetimeIndex(pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta([0, 60, 600, 660], unit="s"))
    (o,) = judge_spans(np.array([0, 0, 1, 0]), times, [(1, 3)], grace=1)
    assert o.delay_rows == 1 and o.delay_min == 9.0


def test_false_alerts_count_openings_outside_spans_on_the_test_part_only() -> None:
    f = flags(2, 3, 12, 13, 14, 22, 30, 31)
    # openings at 2 (training part), 12 (in the span), 22 (in its grace), 30 (outside): one false alert
    assert false_alerts(f, [(10, 18)], grace=5, first_row=5) == 1
    assert false_alerts(f, [(10, 18)], grace=5, first_row=0) == 2
    assert false_alerts(f, [], grace=5, first_row=5) == 3
    # an alert that opens before the span and lasts into it: false opening, and the span counts as found
    early = flags(*range(8, 13))
    assert false_alerts(early, [(10, 18)], grace=5, first_row=5) == 1
    assert judge_spans(early, TIMES, [(10, 18)], grace=5)[0].delay_rows == 0
    # an alert open from the training part into the test part: the test part starts in a false alert
    held = flags(*range(3, 9), 30)
    assert false_alerts(held, [], grace=5, first_row=5) == 2
    assert false_alerts(held, [(5, 9)], grace=5, first_row=5) == 1  # inside a span: not false
    assert false_alerts(flags(*range(0, 40)), [], grace=5, first_row=5) == 1


def test_threshold_ratios() -> None:
    score = np.array([np.nan, 1.0, 2.0, 4.0, 100.0])
    threshold = np.array([np.nan, 3.0, 3.0, 8.0, 3.0])
    normal = np.array([True, True, True, True, False])
    r = threshold_ratios(score, threshold, normal)
    assert r.median_over_score == pytest.approx(2.0)  # median of 3, 1.5, 2
    p99 = np.percentile([1.0, 2.0, 4.0], 99)
    assert r.max_over_p99 == pytest.approx(8.0 / p99) and r.min_over_p99 == pytest.approx(3.0 / p99)
    assert math.isnan(threshold_ratios(score, threshold, np.zeros(5, dtype=bool)).median_over_score)


def test_score_series_uses_test_rows_for_ratios_and_days() -> None:
    times = pd.date_range("2026-01-05", periods=289 * 2, freq="5min", tz="UTC")
    n = len(times)
    score, threshold = np.ones(n), np.full(n, 2.0)
    threshold[:289] = 50.0  # a training-part threshold is not judged
    score[400:410] = 40.0  # scores inside the span + grace are not "normal"
    out = score_series("x#0", "spike", flags(300, 400, n=n), score, threshold, times, [(400, 405)], 289, grace=5)
    assert out.test_days == pytest.approx(1.0, abs=1e-9)
    assert out.false_alerts == 1 and out.spans[0].found
    assert out.ratios.max_over_p99 == pytest.approx(2.0) and out.ratios.median_over_score == pytest.approx(2.0)
    # normal test rows: 289..577 minus the span + grace 400..409 = 279 rows, one of them (300) under an alert
    assert out.alerted_share == pytest.approx(1 / 279)


def _outcome(kind: str, found: list[bool], false: int, days: float = 1.0) -> object:
    n = 100
    f = np.zeros(n, dtype=np.int8)
    spans = []
    for i, hit in enumerate(found):
        start = 20 + 20 * i
        spans.append((start, start + 5))
        if hit:
            f[start + 1] = 1
    for j in range(false):
        f[92 + 2 * j] = 1
    times = pd.date_range("2026-01-05", periods=n, freq=pd.Timedelta(days=days / (n - 10)), tz="UTC")
    return score_series(f"{kind}#0", kind, f, np.ones(n), np.ones(n), times, spans, 10, grace=2)


def test_recall_is_a_mean_over_kinds_and_rates_are_pooled() -> None:
    outcomes = [_outcome("spike", [True], 0), _outcome("drift", [True, False, False], 1),
                _outcome("clean_noise", [], 2), _outcome("clean_daily", [], 0, days=3.0)]
    rows = {r.kind: r for r in summarise(outcomes)}  # type: ignore[arg-type]
    assert rows["drift"].recall == pytest.approx(1 / 3) and rows["drift"].n_found == 1
    assert math.isnan(rows["clean_noise"].recall) and rows["clean_noise"].false_per_day == pytest.approx(2.0, rel=0.02)
    assert rows["clean_noise"].alerted_share == pytest.approx(2 / 90)  # rows 92 and 94 of the 90 test rows
    recall, clean_rate, anomalous_rate = headline(outcomes)  # type: ignore[arg-type]
    assert recall == pytest.approx((1 + 1 / 3) / 2)  # not the pooled 2 / 4
    assert clean_rate == pytest.approx(2 / 4.0, rel=0.02)  # 2 false alerts over 1 + 3 sensor-days
    assert anomalous_rate == pytest.approx(1 / 2.0, rel=0.02)


def test_quality_line_formats_and_marks_missing_legs() -> None:
    line = quality_line({"skab_f1": 0.8123, "skab_far": 12.34, "taxonomy_recall": float("nan")})
    assert line == ("quality: skab_f1=0.812 skab_far=12.3% tep_fdr=n/a tep_far=n/a tep_far_normal=n/a "
                    "taxonomy_recall=n/a taxonomy_false_per_day=n/a")


def test_parse_legs() -> None:
    assert parse_legs("tep, taxonomy") == ["tep", "taxonomy"]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_legs("skab,nab")
