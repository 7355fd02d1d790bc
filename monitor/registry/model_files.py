"""Model artifact files: written atomically, read back validated (``monitor.core.scoring.artifact`` holds the
format, these the file I/O; the registry stores the same bytes in the database)."""

from __future__ import annotations

from pathlib import Path

from monitor.core.scoring.artifact import ModelBundle, ModelMeta, from_bytes, meta_from_bytes, to_bytes
from monitor.errors import ArtifactError


def save(bundle: ModelBundle, path: Path) -> Path:
    """Write atomically (temp file + rename), so a reader never sees half a model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(to_bytes(bundle))
    tmp.replace(path)
    return path


def read_meta(path: Path) -> ModelMeta:
    """The metadata of the artifact at ``path`` (no module is built; the weights are not checked)."""
    path = Path(path)
    return meta_from_bytes(_read(path), str(path))


def load(path: Path) -> ModelBundle:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model artifact {path} does not exist (train one with `monitor train`)")
    return from_bytes(_read(path), str(path))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"model artifact {path} cannot be read ({exc.strerror or exc})") from exc
