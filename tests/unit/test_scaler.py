"""The robust scaler (monitor/core/scoring/scaler.py): the IQR's scale, and a wider one for a channel with a second
state a few percent of its rows hold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monitor.core.scoring import scaler as scaler_module
from monitor.core.scoring.scaler import RobustScaler


def _iqr_scale(values: np.ndarray) -> np.ndarray:
    q75, q25 = np.percentile(values, [75, 25], axis=0)
    scale: np.ndarray = (q75 - q25) / 1.349
    return scale


def test_gaussian_laplace_and_uniform_channels_keep_the_iqr_scale() -> None:
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.normal(5, 2, 2000), rng.laplace(0, 1, 2000), rng.uniform(30, 70, 2000)])
    fitted = RobustScaler.fit(values)
    assert np.allclose(fitted.scale, _iqr_scale(values).astype(np.float32))


def test_a_second_state_a_few_percent_of_the_rows_hold_sets_a_wider_scale() -> None:
    """8 % of the rows 33 noise SDs above the rest (a job that runs half an hour every six): the IQR's scale put
    them 33 units off; the 1-99 % range puts them within a few units."""
    rng = np.random.default_rng(1)
    rows = np.arange(2000)
    values = (20 + rng.normal(0, 1.5, 2000) + np.where(rows % 72 < 6, 50.0, 0.0))[:, None]
    fitted = RobustScaler.fit(values)
    q99, q01 = np.percentile(values, [99, 1], axis=0)
    assert fitted.scale[0] == pytest.approx((q99 - q01)[0] / scaler_module.WIDE_SPAN, rel=1e-5)
    assert fitted.scale[0] > scaler_module.WIDE * _iqr_scale(values)[0]
    assert np.abs(fitted.transform(values)).max() < 6


def test_a_quantised_channel_and_a_single_start_up_keep_the_iqr_scale() -> None:
    """A channel of a few levels (a flow read as whole units, one level a few percent of the time: its "second
    state" is one quantum) and one whose history starts with a single run far off its later rows (a start-up) keep
    the IQR's scale, as before the rule (docs/quality.md round 19: applied to SKAB's quantised flows, the rule moved
    SKAB's F1 from 0.785 to 0.771)."""
    rng = np.random.default_rng(2)
    quantised = rng.choice([31.0, 32.0, 33.0], p=[0.005, 0.75, 0.245], size=400) + rng.normal(0, 1e-3, 400).round(3)
    start_up = rng.normal(100, 1.0, 400)
    start_up[:30] = np.linspace(0, 100, 30)
    values = np.column_stack([quantised, start_up])
    assert np.allclose(RobustScaler.fit(values).scale, _iqr_scale(values).astype(np.float32))


@settings(max_examples=60, deadline=None)
@given(values=arrays(np.float64, st.tuples(st.integers(1, 60), st.integers(1, 3)),
                     elements=st.floats(-1e6, 1e6, allow_nan=False)))
def test_the_scale_is_finite_positive_and_never_narrower_than_the_iqrs(values: np.ndarray) -> None:
    fitted = RobustScaler.fit(values)
    assert np.isfinite(fitted.scale).all() and (fitted.scale > 0).all()
    iqr = _iqr_scale(values)
    assert (fitted.scale >= np.where(iqr > 1e-9, iqr, 0).astype(np.float32) * (1 - 1e-6)).all()
