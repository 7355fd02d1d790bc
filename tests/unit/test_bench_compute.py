"""`make bench` runs to its last line on any x86-64 CPU: the bfloat16 figure is skipped, with the reason, where
torch cannot run a bf16 LSTM (oneDNN without AVX-512)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer, Scores
from monitor.core.windows import sliding_windows
from pipelines.bench.compute import bf16_check

ONEDNN = "could not create a primitive descriptor for the LSTM forward propagation primitive"


class _NoBf16Scorer(Scorer):
    """A scorer on a CPU whose oneDNN has no bf16 LSTM: its forward raises what torch raises there."""

    def score(self, windows: np.ndarray, starts: np.ndarray | None = None, ends: np.ndarray | None = None,
              previous: np.ndarray | None = None) -> Scores:
        if self.bf16:
            raise RuntimeError(ONEDNN)
        return super().score(windows, starts, ends, previous)


def _sample(history: pd.DataFrame) -> np.ndarray:
    return sliding_windows(history.to_numpy(dtype=np.float32)[:400], 8, 4)


def test_a_cpu_without_bf16_lstm_skips_the_figure_and_says_why(tiny_bundle: ModelBundle,
                                                               tiny_history: pd.DataFrame) -> None:
    calls: list[bool] = []

    def alerts(scorer: Scorer) -> object:
        calls.append(scorer.bf16)
        return []

    wps, same, note = bf16_check(lambda bf16: _NoBf16Scorer(tiny_bundle, bf16=bf16), _sample(tiny_history), 1, alerts)
    assert wps is None and same is None
    assert note.startswith("skipped") and ONEDNN in note
    assert calls == []  # nothing else ran in bf16 after the probe failed


def test_a_cpu_with_bf16_measures_it_and_compares_alerts_with_fp32(tiny_bundle: ModelBundle,
                                                                   tiny_history: pd.DataFrame) -> None:
    made: dict[int, bool] = {}
    seen: list[bool] = []

    def make(bf16: bool) -> Scorer:
        scorer = Scorer(tiny_bundle)  # fp32 kernels whatever this CPU supports; remembered as the kind asked for
        made[id(scorer)] = bf16
        return scorer

    def alerts(scorer: Scorer) -> object:
        seen.append(made[id(scorer)])
        return ["the same alerts"]

    wps, same, note = bf16_check(make, _sample(tiny_history), 1, alerts)
    assert wps is not None and wps > 0
    assert same is True and note == ""
    assert sorted(seen) == [False, True]  # the alerts of a bf16 and of an fp32 scorer were compared
