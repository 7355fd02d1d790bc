from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine

from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.train import train
from monitor.settings import ModelSettings
from monitor.store.database import init_schema, make_engine
from pipelines.synthetic import history_frame

TINY = ModelSettings(window_len=8, stride=4, hidden_size=4, latent_size=2, epochs=15, batch_size=16, seed=3)


@pytest.fixture(scope="session")
def tiny_history() -> pd.DataFrame:
    return history_frame(600, n_channels=3, sensors=2)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_history: pd.DataFrame) -> ModelBundle:
    return train(tiny_history, TINY, version="tiny-1", sensors=2)


@pytest.fixture()
def tiny_model_cfg() -> ModelSettings:
    """A small, quick model for tests that train their own (a few seconds on one core)."""
    return ModelSettings(window_len=16, stride=2, hidden_size=8, latent_size=4, epochs=12, batch_size=32, seed=0)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Engine]:
    """A fresh SQLite database with the schema."""
    engine = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    init_schema(engine)
    yield engine
    engine.dispose()
