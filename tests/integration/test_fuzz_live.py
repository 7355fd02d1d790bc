"""The short form of `make fuzz`: the real `monitor run` process on the real broker, SQLite and PostgreSQL, fed
good windows mixed with a poison corpus and random mutations for a few seconds per database. No crash, no stall,
lag back to 0, every bad record dead-lettered with the contract's reason, every good window applied exactly once,
no non-finite number stored."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.core import contract
from pipelines.faults.fuzz import run, summary_line
from tests.integration.api_helpers import api_bundle, api_model_path  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


def test_fuzz_short_form_on_both_databases(kafka_bootstrap: str, pg_url: str, api_model_path: Path,
                                           tmp_path: Path) -> None:
    outcomes = run(["sqlite", "postgresql"], duration_s=12, rate_per_s=60, seed=16, bootstrap=kafka_bootstrap,
                   pg_url=pg_url, model=api_model_path, workdir=tmp_path)
    assert [o.database for o in outcomes] == ["sqlite", "postgresql"]
    for o in outcomes:
        assert o.failures == [], (o.database, o.failures, o.facts.get("log"))
        assert o.records >= 300 and o.bad >= 50, (o.database, o.records, o.bad)
        assert o.dead_letters == o.bad
        assert (o.crashes, o.stalls, o.nonfinite) == (0, 0, 0)
        # every decoding rule was exercised, and the per-sensor order: late windows dead-lettered as out_of_order,
        # re-sent ones skipped (the reference run that found every good window applied once skips them too)
        assert set(o.facts["reasons"]) == {*contract.REASONS, contract.OUT_OF_ORDER}, o.facts["reasons"]
        assert o.facts["reasons"][contract.OUT_OF_ORDER] == o.facts["kinds"]["late"] > 0, o.facts
        assert o.facts["kinds"]["resend"] > 0, o.facts["kinds"]
        assert o.facts["kinds"]["extreme"] > 0 and o.facts["kinds"]["mutation"] > 0, o.facts["kinds"]
        assert o.facts["health_samples"] >= 5, "the consumer's /healthz was not watched"
    line = summary_line(outcomes)
    assert re.fullmatch(r"fuzz: records=\d+ bad=\d+ dead_letters=\d+ crashes=0 stalls=0 nonfinite=0", line), line


def test_fuzz_short_form_through_the_decode_process(kafka_bootstrap: str, pg_url: str, api_model_path: Path,
                                                    tmp_path: Path) -> None:
    """The same stream with every batch decoded in the child process (run.decode_process true): the poison corpus
    and the mutations cross its pipes, and the outcome is the same as decoding in the consumer's thread. The
    default uses the child only while the consumer is behind, which the test above's consumer never is."""
    [o] = run(["sqlite"], duration_s=12, rate_per_s=60, seed=17, bootstrap=kafka_bootstrap, pg_url=pg_url,
              model=api_model_path, workdir=tmp_path, decode_process=True)
    assert o.failures == [], (o.failures, o.facts.get("log"))
    assert o.facts["decode_process"] == "started"
    assert o.records >= 300 and o.bad >= 50 and o.dead_letters == o.bad, (o.records, o.bad, o.dead_letters)
    assert (o.crashes, o.stalls, o.nonfinite) == (0, 0, 0)
    assert set(o.facts["reasons"]) == {*contract.REASONS, contract.OUT_OF_ORDER}, o.facts["reasons"]
