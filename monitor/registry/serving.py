"""Which model `monitor run` serves: the registry's active version when there is one, else the file."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine as DbEngine

from monitor.core.scoring.artifact import ModelBundle
from monitor.registry import model_files, versions
from monitor.registry.watcher import ModelWatcher
from monitor.settings import RegistrySettings

log = logging.getLogger(__name__)


def serving_model(
    db: DbEngine, registry: RegistrySettings, default_path: Path, explicit_path: Path | None = None
) -> tuple[ModelBundle, ModelWatcher | None]:
    """The model to serve and the watcher for hot swaps.

    An explicit path pins that file (no hot swap). Otherwise the registry is the source of truth: its active
    version if any, else ``default_path``; either way a watcher picks up later promotions.
    """
    if explicit_path is not None:
        return model_files.load(explicit_path), None
    active = versions.active_version(db, registry.model_name)
    if active is not None:
        bundle = versions.load_bundle(db, registry.model_name, active)
        log.info("serving registry model %s/%s", registry.model_name, active)
    else:
        bundle = model_files.load(default_path)
        log.info("no active model %r in the registry: serving %s", registry.model_name, default_path)
    return bundle, ModelWatcher(db, registry.model_name, active, serving=bundle.meta,
                                check_interval_s=registry.check_interval_s)
