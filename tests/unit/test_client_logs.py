"""The Kafka client's repeated log lines at a human rate (monitor/observe/client_logs.py): a consumer waiting for
a topic that does not exist logged ten ERROR lines a second; now one per 30 s, with what to do and how many were
held back. The product's own lines always pass."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from monitor.observe.client_logs import RepeatLimit


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_missing_topic_is_said_once_per_period_with_the_fix_and_the_count() -> None:
    now = [0.0]
    limit = RepeatLimit(every_s=30.0, clock=lambda: now[0])
    passed = []
    for i in range(600):  # a minute at kafka-python's retry rate
        now[0] = i * 0.1
        record = _record("kafka.cluster", "Topic %s not found in cluster metadata", "w2-probe")
        if limit.filter(record):
            passed.append(record.getMessage())
    assert len(passed) == 2
    assert passed[0].startswith("Topic w2-probe not found in cluster metadata; the topic does not exist")
    assert "monitor topics create" in passed[0] and "more like it" not in passed[0]
    assert passed[1].endswith("(299 more like it in the last 30 s)")


def test_the_products_own_lines_and_other_client_lines_are_not_held() -> None:
    limit = RepeatLimit(every_s=30.0, clock=lambda: 0.0)
    assert all(limit.filter(_record("monitor.consumer.runner", "batch %d", i)) for i in range(100))
    assert limit.filter(_record("kafka.conn", "connection to %s failed", "b1"))
    assert limit.filter(_record("kafka.coordinator", "heartbeat failed"))  # another template: its own period
    assert not limit.filter(_record("kafka.conn", "connection to %s failed", "b2"))  # same template, other args


@given(st.text(max_size=40), st.lists(st.text(max_size=10), max_size=3))
def test_any_client_message_still_formats(template: str, args: list[str]) -> None:
    now = [0.0]
    limit = RepeatLimit(every_s=1.0, clock=lambda: now[0])
    first = _record("kafka.client", template, *args)
    limit.filter(first)
    now[0] = 0.5
    limit.filter(_record("kafka.client", template, *args))  # held
    now[0] = 2.0
    again = _record("kafka.client", template, *args)
    assert limit.filter(again)
    try:
        expected = template % tuple(args) if args else template
    except (TypeError, ValueError):
        return  # a template that does not format on its own: logging reports it either way
    assert again.getMessage() == f"{expected} (1 more like it in the last 2 s)"
