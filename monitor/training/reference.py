"""The retraining gate's fixed reference set: windows of alerts an operator confirmed.

A candidate must detect every confirmed true positive the active model detects, and must not raise more
confirmed false positives than the active model (issue 19: a retrain only ever makes the monitor better, judged
where it matters). Each retrain harvests, from the history it reads, the windows of alerts confirmed since (the
alert's windows plus ``retrain.reference_context`` windows of the same sensor before it, on which the threshold
and the input centres settle) and keeps them in ``reference_windows``, beyond the topic's retention. A
reference is judged like the hold-out: the sensor's windows in time order through the one judge
(``monitor.core.engine.Engine``, a fresh sensor context), flagged when an alert is active on a window that overlaps
the confirmed range.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import Engine as DbEngine
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from monitor.core.contract import SensorWindow
from monitor.core.engine import Engine, Record
from monitor.core.scoring.artifact import ModelBundle
from monitor.core.scoring.scorer import Scorer
from monitor.errors import StoreError
from monitor.settings import AlertSettings, ThresholdSettings
from monitor.store.schema import AlertFeedback, ReferenceWindows, utcnow
from monitor.training.gate import ReferenceCheck
from monitor.training.history import HistoryWindow

TRUE_POSITIVE, FALSE_POSITIVE = "true_positive", "false_positive"


@dataclass(frozen=True)
class Reference:
    alert_id: int
    kind: str
    sensor_id: str
    alert_start: datetime
    alert_end: datetime
    starts: np.ndarray  # (n,) unix seconds
    ends: np.ndarray
    values: np.ndarray  # (n, window_len, channels) float32

    def describe(self) -> str:
        return f"alert #{self.alert_id} ({self.sensor_id}, {self.alert_start.isoformat()})"


def select_windows(
    windows: Sequence[HistoryWindow], sensor_id: str, start: datetime, end: datetime, context: int
) -> list[HistoryWindow]:
    """The sensor's windows that overlap ``[start, end]``, after the ``context`` windows before them, in time
    order; none when no window overlaps (the alert is not in this history). Pure."""
    own = sorted((w for w in windows if w.sensor_id == sensor_id), key=lambda w: w.window_start)
    inside = [i for i, w in enumerate(own) if w.window_start <= end and w.window_end >= start]
    if not inside:
        return []
    first = max(0, inside[0] - context)
    return own[first : inside[-1] + 1]


def harvest(
    db: DbEngine, name: str, windows: Sequence[HistoryWindow], channels: Sequence[str], window_len: int,
    context: int,
) -> int:
    """Store the windows of confirmed alerts (true or false positives) not yet kept for ``name`` that this history
    covers; returns how many alerts were added."""
    fb = AlertFeedback.__table__.c
    ref = ReferenceWindows.__table__.c
    try:
        with db.connect() as conn:
            confirmed = conn.execute(
                select(fb.alert_id, fb.verdict, fb.sensor_id, fb.window_start, fb.window_end)
                .where(fb.verdict.in_((TRUE_POSITIVE, FALSE_POSITIVE)))).all()
            kept = set(conn.execute(select(ref.alert_id).where(ref.name == name)).scalars())
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the reference set: {exc.__class__.__name__}") from exc
    verdicts = {int(a): v for a, v, *_ in confirmed}
    _follow_verdicts(db, name, kept, verdicts)
    rows = []
    for alert_id, verdict, sensor_id, start, end in confirmed:
        if int(alert_id) in kept:
            continue
        chosen = select_windows(windows, sensor_id, _utc(start), _utc(end), context)
        if not chosen:
            continue
        values = np.stack([w.values for w in chosen]).astype(np.float32)
        buffer = io.BytesIO()
        np.save(buffer, values, allow_pickle=False)
        rows.append({
            "name": name, "alert_id": int(alert_id), "kind": verdict, "sensor_id": sensor_id,
            "alert_start": _utc(start), "alert_end": _utc(end), "channels": list(channels), "window_len": window_len,
            "starts": [w.window_start.timestamp() for w in chosen], "ends": [w.window_end.timestamp() for w in chosen],
            "values": buffer.getvalue(), "created_at": utcnow(),
        })
    added = 0
    for row in rows:  # one at a time: a concurrent retrain may have stored the same alert meanwhile
        try:
            with db.begin() as conn:
                conn.execute(insert(ReferenceWindows), [row])
            added += 1
        except IntegrityError:
            continue
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot store reference windows: {exc.__class__.__name__}") from exc
    return added


def _follow_verdicts(db: DbEngine, name: str, kept: set[int], verdicts: dict[int, str]) -> None:
    """An operator's later verdict wins: a kept reference changes kind, or leaves the set when its alert is no
    longer a confirmed true or false positive (a new normal, or the feedback gone)."""
    ref = ReferenceWindows.__table__.c
    try:
        with db.begin() as conn:
            gone = [a for a in kept if a not in verdicts]
            if gone:
                conn.execute(delete(ReferenceWindows).where(ref.name == name, ref.alert_id.in_(gone)))
            for kind in (TRUE_POSITIVE, FALSE_POSITIVE):
                ids = [a for a in kept if verdicts.get(a) == kind]
                if ids:
                    conn.execute(update(ReferenceWindows).where(ref.name == name, ref.alert_id.in_(ids),
                                                                ref.kind != kind).values(kind=kind))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot update the reference set: {exc.__class__.__name__}") from exc
    kept.difference_update(a for a in list(kept) if a not in verdicts)


def load(db: DbEngine, name: str, channels: Sequence[str], window_len: int) -> list[Reference]:
    """The references of ``name`` whose windows fit these channels and this window length, oldest alert first."""
    ref = ReferenceWindows.__table__.c
    try:
        with db.connect() as conn:
            rows = conn.execute(select(ReferenceWindows.__table__).where(ref.name == name)
                                .order_by(ref.alert_start, ref.alert_id)).mappings().all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the reference set: {exc.__class__.__name__}") from exc
    out = []
    for row in rows:
        if list(row["channels"]) != list(channels) or int(row["window_len"]) != window_len:
            continue
        values = np.load(io.BytesIO(row["values"]), allow_pickle=False)
        out.append(Reference(int(row["alert_id"]), row["kind"], row["sensor_id"], _utc(row["alert_start"]),
                             _utc(row["alert_end"]), np.asarray(row["starts"], dtype=np.float64),
                             np.asarray(row["ends"], dtype=np.float64), values))
    return out


def flagged(bundle: ModelBundle, ref: Reference, threshold_cfg: ThresholdSettings, alert_cfg: AlertSettings) -> bool:
    """Whether ``bundle`` has an alert active on a window overlapping the confirmed range (fresh sensor context)."""
    engine = Engine(Scorer(bundle), threshold_cfg, alert_cfg)
    channels = tuple(bundle.meta.channels)
    records = [Record(0, i, SensorWindow(ref.sensor_id, datetime.fromtimestamp(float(s), timezone.utc),
                                         datetime.fromtimestamp(float(e), timezone.utc), channels, ref.values[i]))
               for i, (s, e) in enumerate(zip(ref.starts, ref.ends))]
    lo, hi = ref.alert_start.timestamp(), ref.alert_end.timestamp()
    for record, decision in engine.process(records).decisions:
        i = record.offset
        if decision.active and ref.starts[i] <= hi and ref.ends[i] >= lo:
            return True
    return False


def compare(
    candidate: ModelBundle, active: ModelBundle, refs: Sequence[Reference], threshold_cfg: ThresholdSettings,
    alert_cfg: AlertSettings,
) -> ReferenceCheck:
    tp = [r for r in refs if r.kind == TRUE_POSITIVE]
    fp = [r for r in refs if r.kind == FALSE_POSITIVE]
    on_tp = [(r, flagged(active, r, threshold_cfg, alert_cfg), flagged(candidate, r, threshold_cfg, alert_cfg))
             for r in tp]
    on_fp = [(r, flagged(active, r, threshold_cfg, alert_cfg), flagged(candidate, r, threshold_cfg, alert_cfg))
             for r in fp]
    return ReferenceCheck(
        true_positives=len(tp), false_positives=len(fp),
        detected_by_active=sum(a for _, a, _ in on_tp), detected_by_candidate=sum(c for _, _, c in on_tp),
        raised_by_active=sum(a for _, a, _ in on_fp), raised_by_candidate=sum(c for _, _, c in on_fp),
        missed=[r.describe() for r, a, c in on_tp if a and not c],
        raised=[r.describe() for r, a, c in on_fp if c and not a],
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
