"""The linear (PCA residual) term: fitted on correlated channels, silent while they move together, loud when
they part; no term where there is nothing to watch; damaged artifacts refused."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.scoring.linear import Linear


def _correlated(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latent = np.cumsum(rng.normal(0, 0.3, n))
    a = 5 * latent + rng.normal(0, 0.2, n)
    b = 3 * latent + rng.normal(0, 0.2, n)
    c = rng.normal(0, 1, n)
    return np.stack([a, b, c], axis=1)


def test_a_correlation_break_raises_the_residual_of_the_parted_channels_only_relative_to_normal() -> None:
    rows = _correlated(2000)
    linear = Linear.fit(rows[:1500], 0.9)
    assert linear is not None and 1 <= linear.components.shape[0] < 3
    normal = rows[1500:].reshape(-1, 20, 3)
    broken = normal.copy()
    broken[:, :, 1] = -broken[:, :, 1]  # b now moves against a: each stays within its own range
    q_normal = linear.residual(normal).sum(axis=1)
    q_broken = linear.residual(broken).sum(axis=1)
    assert np.median(q_broken) > 20 * np.median(q_normal)


def test_nothing_to_watch_gives_no_term() -> None:
    rng = np.random.default_rng(1)
    assert Linear.fit(rng.normal(size=(500, 1)), 0.9) is None  # one channel
    assert Linear.fit(np.ones((500, 3)), 0.9) is None  # constant rows
    assert Linear.fit(rng.normal(size=(5, 4)), 0.9) is None  # fewer rows than 2 x channels
    assert Linear.fit(rng.normal(size=(500, 3)), 0.999) is None  # independent noise: every component needed
    assert Linear.fit(rng.normal(size=(500, 3)), 1.0) is None


def test_round_trip_and_damaged_dicts() -> None:
    linear = Linear.fit(_correlated(600), 0.9)
    assert linear is not None
    again = Linear.from_dict(linear.to_dict(), 3)
    assert again is not None
    windows = _correlated(100, seed=3).reshape(5, 20, 3)
    np.testing.assert_array_equal(again.residual(windows), linear.residual(windows))
    assert Linear.from_dict({}, 3) is None
    with pytest.raises(ValueError):
        Linear.from_dict(linear.to_dict(), 4)  # other channel count
    bad = linear.to_dict()
    bad["centre"][0] = float("nan")
    with pytest.raises(ValueError):
        Linear.from_dict(bad, 3)
    every = {"centre": [0.0, 0.0], "components": [[1.0, 0.0], [0.0, 1.0]]}
    with pytest.raises(ValueError):
        Linear.from_dict(every, 2)  # as many components as channels: nothing left to watch
