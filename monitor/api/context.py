"""An alert's context for plotting: the scores and thresholds decided at the time (``monitor.core.evidence``, stored
with the alert), and the sensor's window values read back from Kafka by the alert's source offsets.

Scores are never re-computed for an alert with evidence: the page plots exactly what fired (each window's score,
threshold and contributions as the engine decided them, with the model version that decided). An alert without
evidence (created before it was recorded, schema revision 0005) is re-scored with the model version that fired
(the serving model when it is that version, else the registry's copy of it), without the sensor's input
re-centring, so approximately, and the ``note`` says so; when that version cannot be loaded, it has no scores.

Window values are not kept in SQL; the topic is the record of them (``monitor.ingest.replay.read_windows``: a
consumer WITHOUT a group reads the alert's partition from a little before ``first_offset`` to a little after
``last_offset``; it never joins or commits for the live consumer group). When the topic's retention has removed
the records, the alert comes back without context and says so.

Thresholds (alerts without evidence only): while an alert is pending or active the sensor's statistics are
frozen (protected), so the open level in force across the alert is ``threshold_at_peak``; the same value is
drawn across the context (an approximation outside the alert).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine as DbEngine

from monitor.core.contract import SensorWindow, format_time
from monitor.core.evidence import EvidenceRow, Mark
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.errors import ArtifactError, MonitorError
from monitor.ingest.replay import ContextWindows
from monitor.registry import model_files, versions
from monitor.registry.serving import serving_model
from monitor.registry.watcher import ModelWatcher
from monitor.settings import RegistrySettings

log = logging.getLogger(__name__)


class ModelCache:
    """The serving model, resolved as `monitor run` resolves it (``monitor.registry.serving.serving_model``):
    the registry's active version when there is one, else the ``default_path`` file.

    Promotions and rollbacks are picked up by the same ``ModelWatcher`` as the consumers use (a pointer read
    at most every ``registry.check_interval_s``; an incompatible or damaged promotion is refused as there).
    While the file serves, a rewritten file is reloaded, as a consumer started now would serve it; a rewritten
    file that cannot be loaded leaves the loaded model serving. ``problem`` says why the model that should
    serve does not (None when it does).
    """

    def __init__(self, db: DbEngine, registry: RegistrySettings, default_path: Path) -> None:
        self.db = db
        self.registry = registry
        self.path = Path(default_path)
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._bundle: ModelBundle | None = None
        self._watcher: ModelWatcher | None = None
        self._problem: str | None = None
        self._versions: dict[str, ModelBundle] = {}  # older versions that alerts fired with (a few)

    @property
    def source(self) -> str:
        """Where the serving model comes from: ``registry:<name>/<version>`` or the file's path."""
        version = self._watcher.current_version if self._watcher is not None else None
        return f"registry:{self.registry.model_name}/{version}" if version else str(self.path)

    @property
    def problem(self) -> str | None:
        """Why the model that should serve does not: it cannot be loaded, or a promotion or a rewritten file was
        refused (the message names the artifact and what is wrong with it)."""
        return self._problem or (self._watcher.problem if self._watcher is not None else None)

    def get(self) -> ModelBundle:
        """The serving model; raises ``MonitorError`` while none can be loaded (a later call retries)."""
        with self._lock:
            if self._bundle is None:
                try:
                    self._bundle, self._watcher = serving_model(self.db, self.registry, self.path)
                except MonitorError as exc:
                    self._problem = str(exc)
                    raise
                self._problem = None
                self._stamp = self._file_stamp() if self._from_file() else None
            elif self._watcher is not None and (newer := self._watcher.poll()):
                self._bundle, self._stamp, self._problem = newer, None, None
            elif self._from_file() and (stamp := self._file_stamp()) not in (None, self._stamp):
                self._stamp = stamp  # a damaged file is read once, not on every request
                try:
                    self._bundle = model_files.load(self.path)
                except ArtifactError as exc:
                    self._problem = f"{exc}; model {self._bundle.meta.version or '?'} keeps serving"
                    log.error("serving model: %s", self._problem)
                else:
                    self._problem = None
                    if self._watcher is not None:
                        self._watcher.serving = self._bundle.meta
            return self._bundle

    def version(self, version: str) -> tuple[ModelBundle | None, str]:
        """The model ``version`` (the one an alert fired with): the serving model when it is that version, else
        the registry's copy; (None, why) when neither can be loaded."""
        try:
            serving: ModelBundle | None = self.get()
        except (MonitorError, OSError):
            serving = None
        if serving is not None and serving.meta.version == version:
            return serving, ""
        with self._lock:
            if version in self._versions:
                return self._versions[version], ""
        try:
            bundle = versions.load_bundle(self.db, self.registry.model_name, version)
        except (MonitorError, OSError) as exc:
            return None, f"model {version}, which fired the alert, cannot be loaded ({exc})"
        with self._lock:
            if len(self._versions) >= 4:
                self._versions.pop(next(iter(self._versions)))
            self._versions[version] = bundle
        return bundle, ""

    def _from_file(self) -> bool:
        return self._watcher is None or self._watcher.current_version is None

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None  # being replaced: keep serving what is loaded
        return (stat.st_mtime, stat.st_size)


def evidence_context(
    alert: dict[str, Any], found: ContextWindows, evidence: list[EvidenceRow], around: int
) -> dict[str, Any]:
    """JSON-able context of an alert with decision-time evidence: per window its score, threshold and
    contributions as decided (``scored_with`` the model version that decided; ``source`` "evidence"), its
    values when Kafka still has the record (else None), and whether it is in the alert. Evidence windows are
    kept from ``around`` before the alert's first window to ``around`` after its last."""
    marks: dict[int, Mark] = {r.mark.offset: r.mark for r in evidence}
    first, last = alert["first_offset"], alert["last_offset"]
    before = [o for o in sorted(marks) if o < first][-around:] if around else []
    after = [o for o in sorted(marks) if o > last][:around]
    shown = {o for o in marks if first <= o <= last} | set(before) | set(after)
    values = dict(found.windows)
    channels = list(found.windows[0][1].channels) if found.windows else []
    inside = [marks[o] for o in sorted(marks) if first <= o <= last]
    decided = sorted({m.model_version for m in inside} or {m.model_version for m in marks.values()})
    note = "scores and thresholds as decided" + (f" by model {', '.join(decided)}" if decided else "")
    if not found.available:
        note += f"; window values unavailable: {found.note}"
    elif found.note != "ok":
        note += f"; {found.note}"
    out: dict[str, Any] = {"available": True, "note": note, "windows": [], "channels": channels,
                           "contributions": {}, "source": "evidence",
                           "scored_with": (inside[-1] if inside else evidence[-1].mark).model_version}
    inside_contrib: np.ndarray | None = None
    for offset in sorted(shown | set(values)):
        mark, window = marks.get(offset), values.get(offset)
        timing: Mark | SensorWindow = mark if mark is not None else values[offset]  # a window in neither is not shown
        start, end = timing.window_start, timing.window_end
        in_alert = first <= offset <= last
        item: dict[str, Any] = {
            "offset": offset, "window_start": format_time(start), "window_end": format_time(end),
            "in_alert": in_alert, "values": window.values.round(6).tolist() if window is not None else None,
            "score": None, "threshold": None, "contributions": None, "model_version": None,
        }
        if mark is not None:
            item.update(score=_json_float(mark.score), threshold=_json_float(mark.threshold),
                        model_version=mark.model_version,
                        contributions=[round(c, 6) if np.isfinite(c) else None for c in mark.contributions.tolist()])
            if in_alert:
                contrib = np.nan_to_num(mark.contributions, nan=0.0, posinf=0.0, neginf=0.0)
                inside_contrib = contrib if inside_contrib is None else inside_contrib + contrib
        out["windows"].append(item)
    if not out["channels"] and inside:
        out["channels"] = [f"channel {i}" for i in range(len(inside[0].contributions))]
    if inside_contrib is not None and inside_contrib.sum() > 0 and len(out["channels"]) == len(inside_contrib):
        share = inside_contrib / inside_contrib.sum()
        out["contributions"] = {c: round(float(v), 6) for c, v in zip(out["channels"], share)}
    return out


def decided_windows(alert: dict[str, Any], evidence: list[EvidenceRow]) -> dict[str, Any]:
    """For feedback: the alert's windows with their scores as decided, in the context's shape. Only windows
    decided by the alert's model version count as in the alert (another version scores on another scale)."""
    version, first, last = alert["model_version"], alert["first_offset"], alert["last_offset"]
    windows = [{"in_alert": first <= r.mark.offset <= last and r.mark.model_version == version,
                "score": _json_float(r.mark.score)} for r in evidence]
    return {"available": True, "note": "scores as decided", "scored_with": version, "windows": windows}


def _json_float(value: float) -> float | None:
    return value if np.isfinite(value) else None


def build_context(
    alert: dict[str, Any], found: ContextWindows, bundle: ModelBundle | None, model_note: str = ""
) -> dict[str, Any]:
    """JSON-able context of an alert WITHOUT decision-time evidence (created before it was recorded): per window
    its values, score (re-computed with ``bundle``, which must be the version that fired, without the sensor's
    input re-centring), threshold (``threshold_at_peak``), contributions and whether it is in the alert."""
    out: dict[str, Any] = {"available": found.available, "note": found.note, "windows": [], "channels": [],
                           "contributions": {}, "scored_with": None, "source": "rescored"}
    if not found.windows:
        return out
    channels = list(found.windows[0][1].channels)
    out["channels"] = channels
    scores: Any = None
    if bundle is not None and list(bundle.meta.channels) == channels and all(
        w.values.shape == (bundle.meta.window_len, len(channels)) for _, w in found.windows
    ):
        scores = Scorer(bundle).score(np.stack([w.values for _, w in found.windows]),
                                      np.array([w.window_start.timestamp() for _, w in found.windows]),
                                      np.array([w.window_end.timestamp() for _, w in found.windows]))
        out["scored_with"] = bundle.meta.version
        out["note"] += (f"; no decision-time evidence for this alert (recorded before it was kept): scores "
                        f"re-computed with model {bundle.meta.version} without the sensor's input re-centring, "
                        "so approximate")
        if bundle.meta.version != alert["model_version"]:
            out["note"] += f"; the alert came from {alert['model_version']}"
    else:
        out["source"] = None
        out["note"] += "; no decision-time evidence for this alert; " + (
            model_note or f"model {alert['model_version']}, which fired it, does not fit these windows: no scores")
    inside_contrib = np.zeros(len(channels))
    for i, (offset, w) in enumerate(found.windows):
        in_alert = alert["first_offset"] <= offset <= alert["last_offset"]
        item: dict[str, Any] = {
            "offset": offset, "window_start": format_time(w.window_start), "window_end": format_time(w.window_end),
            "in_alert": in_alert, "values": w.values.round(6).tolist(),
            "threshold": alert["threshold_at_peak"], "score": None, "contributions": None,
        }
        if scores is not None:
            item["score"] = float(scores.score[i])
            item["contributions"] = [round(float(c), 6) for c in scores.contributions[i]]
            if in_alert:
                inside_contrib += scores.contributions[i]
        out["windows"].append(item)
    if inside_contrib.sum() > 0:
        share = inside_contrib / inside_contrib.sum()
        out["contributions"] = {c: round(float(v), 6) for c, v in zip(channels, share)}
    return out


def load_model(cache: ModelCache | None) -> tuple[ModelBundle | None, str]:
    if cache is None:
        return None, "no model configured"
    try:
        return cache.get(), ""
    except (MonitorError, OSError) as exc:
        return None, f"serving model unavailable ({exc})"
