"""The fault taxonomy of `make bench-quality`: seeded synthetic sensor series with labelled anomalies.

Pure code, no files: ``generate(kind, seed)`` builds one :class:`Series` from numpy's seeded generator, so the
same (kind, seed) gives the same frame on every machine. A series has a training part (its first
``train_rows`` rows, always normal, covering its cycle at least three times) and a test part where at most
one anomaly of its kind is injected. Bases (see docs/quality.md for every magnitude):

* ``daily``: one channel, 5-minute samples (288 rows a day, far longer than a window), a smooth daily cycle
  (peak-to-peak 8 units) plus white noise (SD 0.4);
* ``weekly``: one channel, hourly samples, a business-hours bump on weekdays, a small one at weekends;
* ``plant``: three independent AR(1) process channels (flow, pressure, temperature) on different scales;
* ``noise``: white noise; ``walk``: a slow random walk plus measurement noise; ``oscillation``: a 3-hour
  oscillation plus noise;
* ``irregular``: an AR(1) channel sampled at jittered 5-minute intervals with a few gaps of hours;
* ``quantised``: an integer count (pumps running, 1-3) toggling every few hours, a flow that follows it and an
  independent pressure;
* ``correlated``: two channels driven by one slow latent factor (plus small noise) and one independent channel;
* ``setpoint``: an operator setpoint switching between two levels, a process value following it with a lag,
  and a heater power tied to it; the same switches happen in the training part, so they are normal;
* ``events``: one AR(1) sensor beside three sparse event channels (0, and 1 for a single row now and then, as
  command, valve or door channels are) that do not move it; ``commands``: the same, with ``event_c`` never used
  in the training part (a command first sent after the history, as telemetry streams have);
* ``spiky``: white noise with a one-row spike of +10 SD every 100-300 rows: load spikes that are normal for this
  sensor (a history screen must not take them for anomalies of the history; docs/quality.md, round 12).

Anomaly kinds are in ``ANOMALY_KINDS``; ``CLEAN_KINDS`` are series without any anomaly, where the only right
answer is silence. Spans are row ranges ``[start, end)`` that lie in the test part; a persisting anomaly's
span ends at the end of the series.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

EPOCH = datetime(2026, 1, 5, tzinfo=timezone.utc)  # a Monday: the weekly base starts on a weekday
STEP_S = 300  # 5-minute samples
DAY_ROWS = 288  # 5-minute rows per day
HOURLY_DAY_ROWS = 24
TRAIN_DAYS = 4  # 5-minute bases: 4 daily cycles to train on
TEST_DAYS = 4
QUICK_TEST_DAYS = 2
TRAIN_WEEKS = 3  # weekly base: 3 weekly cycles to train on
TEST_WEEKS = 3
QUICK_TEST_WEEKS = 2


@dataclass(frozen=True)
class Series:
    """One synthetic sensor. ``frame``: (n_rows, n_channels) float32, indexed by strictly increasing aware UTC
    times. ``spans``: anomalous row ranges ``[start, end)``, all at or after ``train_rows``; empty for a clean
    series. ``persists``: the (single) anomaly lasts to the end of the series."""

    name: str
    kind: str
    base: str
    frame: pd.DataFrame
    train_rows: int
    spans: tuple[tuple[int, int], ...]
    persists: bool = False

    @property
    def clean(self) -> bool:
        return not self.spans


@dataclass(frozen=True)
class _Layout:
    train_rows: int
    n_rows: int

    @property
    def n_test(self) -> int:
        return self.n_rows - self.train_rows

    def start(self, rng: np.random.Generator, length: int) -> int:
        """A start row for an ending anomaly of ``length`` rows: not in the first 15 % of the test part, and
        with room after it (the grace period of the scoring and some normal rows)."""
        lo = self.train_rows + max(48, int(0.15 * self.n_test))
        hi = self.n_rows - length - max(48, int(0.1 * self.n_test))
        if hi <= lo:
            raise ValueError(f"test part of {self.n_test} rows is too short for an anomaly of {length} rows")
        return int(rng.integers(lo, hi))

    def persisting_start(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.train_rows + int(0.2 * self.n_test), self.train_rows + int(0.5 * self.n_test)))


# ---------------------------------------------------------------- bases: values (n_rows, n_channels) float64
def _times(n: int, step_s: float) -> pd.DatetimeIndex:
    offsets = pd.to_timedelta(np.arange(n) * step_s, unit="s")
    return pd.DatetimeIndex(pd.Timestamp(EPOCH) + offsets, name="timestamp")


def _irregular_times(rng: np.random.Generator, n: int, train_rows: int) -> pd.DatetimeIndex:
    """Jittered 5-minute intervals (x0.6 .. x1.4, whole seconds) and three gaps of 1-6 h (one in training, two
    in test)."""
    steps = STEP_S * rng.uniform(0.6, 1.4, size=n)
    steps[0] = 0.0
    gap_rows = [int(rng.integers(100, train_rows - 100)), *rng.integers(train_rows + 50, n - 50, size=2)]
    for row in gap_rows:
        steps[row] += rng.uniform(3600, 6 * 3600)
    offsets = np.round(np.cumsum(steps))  # whole seconds, as sensor clocks send them
    return pd.DatetimeIndex(pd.Timestamp(EPOCH) + pd.to_timedelta(offsets, unit="s"), name="timestamp")


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) with marginal standard deviation ``sd``, (n,)."""
    e = rng.normal(0.0, sd * np.sqrt(1 - phi * phi), size=n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sd)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + e[t]
    return out


def _daily_shape(rows: np.ndarray, phase: float) -> np.ndarray:
    """A smooth, slightly asymmetric daily cycle in [-1, 1] (rows of 5 minutes)."""

    def raw(r: np.ndarray) -> np.ndarray:
        x = 2 * np.pi * r / DAY_ROWS + phase
        return np.sin(x) + 0.3 * np.sin(2 * x + 0.5)

    one_day = raw(np.arange(DAY_ROWS))
    out: np.ndarray = 2 * (raw(rows) - one_day.min()) / np.ptp(one_day) - 1
    return out


DAILY_LEVEL, DAILY_AMPLITUDE, DAILY_NOISE = 20.0, 4.0, 0.4  # peak-to-peak 8 = 20 noise SD


def _daily(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values (n, 1), cycle (n,)): level + amplitude * cycle + noise."""
    cycle = _daily_shape(np.arange(n), rng.uniform(0, 2 * np.pi))
    values = DAILY_LEVEL + DAILY_AMPLITUDE * cycle + rng.normal(0, DAILY_NOISE, size=n)
    return values[:, None], cycle


WEEKLY_LEVEL, WEEKDAY_BUMP, WEEKEND_BUMP, WEEKLY_NOISE = 50.0, 20.0, 5.0, 2.0


def _weekly(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 1) hourly load: a business-hours bump (7-19 h) of 20 on weekdays, 5 at weekends, noise SD 2."""
    hours = np.arange(n)
    hour_of_day, day = hours % 24, (hours // 24) % 7  # EPOCH is a Monday, 00:00 UTC
    bump = np.where((hour_of_day >= 7) & (hour_of_day < 19), np.sin(np.pi * (hour_of_day - 7) / 12) ** 2, 0.0)
    height = np.where(day < 5, WEEKDAY_BUMP, WEEKEND_BUMP) * rng.uniform(0.9, 1.1)
    return (WEEKLY_LEVEL + height * bump + rng.normal(0, WEEKLY_NOISE, size=n))[:, None]


SCHEDULE_OFF, SCHEDULE_ON, SCHEDULE_NOISE = 20.0, 80.0, 2.0


def _schedule(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values (n, 1), on (n,) bools): a load switched on and off at the same times every day (5-minute rows; on for
    10-14 hours from a start between 05:00 and 08:00, per seed), 20 off and 80 on, noise SD 2: a daily cycle with
    sharp edges, a square wave, which a smooth profile of a few harmonics does not follow (added in round 14)."""
    start = int(rng.integers(5 * 12, 8 * 12))
    length = int(rng.integers(10 * 12, 14 * 12))
    on = (np.arange(n) % DAY_ROWS >= start) & (np.arange(n) % DAY_ROWS < start + length)
    values = np.where(on, SCHEDULE_ON, SCHEDULE_OFF) + rng.normal(0, SCHEDULE_NOISE, size=n)
    return values[:, None], on


PLANT_LEVELS, PLANT_SDS = np.array([100.0, 5.0, 60.0]), np.array([2.0, 0.1, 0.5])


def _plant(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) flow, pressure, temperature: independent AR(1) (phi 0.8) around their levels."""
    return np.stack([lvl + _ar1(rng, n, 0.8, sd) for lvl, sd in zip(PLANT_LEVELS, PLANT_SDS)], axis=1)


def _correlated(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values (n, 3), latent (n,)): a = 50 + 5 L + N(0, 0.5), b = 30 + 3 L + N(0, 0.3), c independent AR(1);
    L is a slow AR(1) (phi 0.99, SD 1)."""
    latent = _ar1(rng, n, 0.99, 1.0)
    a = 50 + 5 * latent + rng.normal(0, 0.5, size=n)
    b = 30 + 3 * latent + rng.normal(0, 0.3, size=n)
    c = 10 + _ar1(rng, n, 0.8, 1.0)
    return np.stack([a, b, c], axis=1), latent


def _quantised(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) pumps running (integer 1-3, toggling by one with probability 1/72 per row), flow = 40 per pump +
    N(0, 1.5), pressure = 3 + AR(1) (SD 0.2)."""
    pumps = np.empty(n)
    count = 2
    toggles = rng.random(n) < 1 / 72
    steps = rng.choice([-1, 1], size=n)
    for t in range(n):
        if toggles[t]:
            count += int(steps[t]) if 1 <= count + steps[t] <= 3 else -int(steps[t])
        pumps[t] = count
    flow = 40 * pumps + rng.normal(0, 1.5, size=n)
    pressure = 3 + _ar1(rng, n, 0.9, 0.2)
    return np.stack([pumps, flow, pressure], axis=1)


SPIKY_GAP_ROWS = (100, 300)  # rows between two normal load spikes (5-minute rows: about 1-3 a day)
SPIKY_SPIKE_SD = 10.0


def _spiky(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 1) white noise (mean 10, SD 1) with a one-row spike of +10 SD every U(100, 300) rows: load spikes that
    are this sensor's normal behaviour (history and test alike)."""
    values = rng.normal(10, 1, size=n)
    t = int(rng.integers(*SPIKY_GAP_ROWS))
    while t < n:
        values[t] += SPIKY_SPIKE_SD
        t += int(rng.integers(*SPIKY_GAP_ROWS))
    return values[:, None]


EVENT_CHANNELS = 3
EVENTS_SENSOR_SD = 0.5
EVENT_GAP_ROWS = (36, 144)  # mean rows between two events of one channel: 3 to 12 hours (5-minute rows)


def _events(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) a sensor (20 + AR(1), phi 0.9, SD 0.5) and three event channels: 0, and 1 for one row with a
    probability of 1 / gap per row, gap drawn per channel from ``EVENT_GAP_ROWS``."""
    sensor = 20 + _ar1(rng, n, 0.9, EVENTS_SENSOR_SD)
    events = np.zeros((n, EVENT_CHANNELS))
    for k in range(EVENT_CHANNELS):
        events[rng.random(n) < 1 / rng.uniform(*EVENT_GAP_ROWS), k] = 1.0
    return np.column_stack([sensor, events])


def _setpoint(rng: np.random.Generator, layout: _Layout) -> np.ndarray:
    """(n, 3) setpoint (50 or 55), process value (first-order lag of 6 rows + N(0, 0.3)) and heater power
    (20 + 0.8 (setpoint - 50) + N(0, 0.5)). The setpoint goes 50 -> 55 -> 50 twice in training and once in
    the test part (for 6-12 hours each time), so each level and each switch is seen before the test."""
    n, tr = layout.n_rows, layout.train_rows
    sp = np.full(n, 50.0)
    for lo, hi in ((int(0.15 * tr), int(0.4 * tr)), (int(0.55 * tr), int(0.75 * tr))):
        up = int(rng.integers(lo, hi))
        sp[up : up + int(rng.integers(DAY_ROWS // 4, DAY_ROWS // 2))] = 55.0
    up = tr + int(rng.integers(int(0.2 * layout.n_test), int(0.5 * layout.n_test)))
    sp[up : up + int(rng.integers(DAY_ROWS // 4, DAY_ROWS // 2))] = 55.0
    pv = np.empty(n)
    pv[0] = sp[0]
    for t in range(1, n):
        pv[t] = pv[t - 1] + (sp[t] - pv[t - 1]) / 6
    pv += rng.normal(0, 0.3, size=n)
    power = 20 + 0.8 * (sp - 50) + rng.normal(0, 0.5, size=n)
    return np.stack([sp, pv, power], axis=1)


# ---------------------------------------------------------------- kinds
_Built = tuple[np.ndarray, pd.DatetimeIndex, tuple[tuple[int, int], ...], bool]
_Builder = Callable[[np.random.Generator, _Layout], _Built]
SPIKE_ROWS, SPIKE_SD = 3, 8.0
LEVEL_SD, LEVEL_ROWS = 4.0, 72  # level shifts: 4 noise SD for 6 hours (5-minute bases)
CYCLE_JUMP = 0.25  # of the daily cycle's peak-to-peak range, for one day


def _spike(rng: np.random.Generator, lay: _Layout) -> _Built:
    values, _ = _daily(rng, lay.n_rows)
    s = lay.start(rng, SPIKE_ROWS)
    values[s : s + SPIKE_ROWS, 0] += rng.choice([-1.0, 1.0]) * SPIKE_SD * DAILY_NOISE
    return values, _times(lay.n_rows, STEP_S), ((s, s + SPIKE_ROWS),), False


def _level(sign: float) -> _Builder:
    def build(rng: np.random.Generator, lay: _Layout) -> _Built:
        if sign > 0:  # up: one channel of the plant
            values = _plant(rng, lay.n_rows)
            channel, sd, length, times = 1, PLANT_SDS[1], LEVEL_ROWS, _times(lay.n_rows, STEP_S)
        else:  # down: the hourly weekly load, for two days
            values = _weekly(rng, lay.n_rows)
            channel, sd, length, times = 0, WEEKLY_NOISE, 2 * HOURLY_DAY_ROWS, _times(lay.n_rows, 3600)
        s = lay.start(rng, length)
        values[s : s + length, channel] += sign * LEVEL_SD * sd
        return values, times, ((s, s + length),), False

    return build


def _shift_beside_events(rng: np.random.Generator, lay: _Layout) -> _Built:
    """The sensor of the ``events`` base shifts up by ``LEVEL_SD`` of its SD for ``LEVEL_ROWS`` rows; the event
    channels go on as before."""
    values = _events(rng, lay.n_rows)
    s = lay.start(rng, LEVEL_ROWS)
    values[s : s + LEVEL_ROWS, 0] += LEVEL_SD * EVENTS_SENSOR_SD
    return values, _times(lay.n_rows, STEP_S), ((s, s + LEVEL_ROWS),), False


def _level_persist(rng: np.random.Generator, lay: _Layout) -> _Built:
    values = 10 + _ar1(rng, lay.n_rows, 0.8, 1.0)[:, None]
    s = lay.persisting_start(rng)
    values[s:, 0] += LEVEL_SD * 1.0
    return values, _irregular_times(rng, lay.n_rows, lay.train_rows), ((s, lay.n_rows),), True


def _variance(rng: np.random.Generator, lay: _Layout) -> _Built:
    values = rng.normal(10, 1, size=(lay.n_rows, 1))
    s = lay.start(rng, LEVEL_ROWS)
    values[s : s + LEVEL_ROWS, 0] = 10 + 3 * (values[s : s + LEVEL_ROWS, 0] - 10)
    return values, _times(lay.n_rows, STEP_S), ((s, s + LEVEL_ROWS),), False


OSC_PERIOD, OSC_ROWS = 36, 144  # a 3-hour oscillation; its period halves for 12 hours


def _frequency(rng: np.random.Generator, lay: _Layout) -> _Built:
    s = lay.start(rng, OSC_ROWS)
    period = np.full(lay.n_rows, float(OSC_PERIOD))
    period[s : s + OSC_ROWS] = OSC_PERIOD / 2
    phase = np.cumsum(2 * np.pi / period) + rng.uniform(0, 2 * np.pi)  # continuous at the change
    values = 5 + np.sin(phase) + rng.normal(0, 0.15, size=lay.n_rows)
    return values[:, None], _times(lay.n_rows, STEP_S), ((s, s + OSC_ROWS),), False


def _flatline(rng: np.random.Generator, lay: _Layout) -> _Built:
    values, _ = _daily(rng, lay.n_rows)
    s = lay.start(rng, LEVEL_ROWS)
    values[s : s + LEVEL_ROWS, 0] = values[s - 1, 0]
    return values, _times(lay.n_rows, STEP_S), ((s, s + LEVEL_ROWS),), False


DRIFT_SD, DRIFT_ROWS = 6.0, DAY_ROWS  # temperature ramps by 6 SD over a day, then stays there


def _drift(rng: np.random.Generator, lay: _Layout) -> _Built:
    values = _plant(rng, lay.n_rows)
    s = lay.persisting_start(rng)
    ramp = np.minimum(np.arange(lay.n_rows - s) / DRIFT_ROWS, 1.0)
    values[s:, 2] += DRIFT_SD * PLANT_SDS[2] * ramp
    return values, _times(lay.n_rows, STEP_S), ((s, lay.n_rows),), True


DROPOUT_ROWS = 36  # 3 hours of zeros on every channel


def _dropout(rng: np.random.Generator, lay: _Layout) -> _Built:
    values = _quantised(rng, lay.n_rows)
    s = lay.start(rng, DROPOUT_ROWS)
    values[s : s + DROPOUT_ROWS] = 0.0
    return values, _times(lay.n_rows, STEP_S), ((s, s + DROPOUT_ROWS),), False


BREAK_ROWS = 144  # 12 hours


def _correlation_break(rng: np.random.Generator, lay: _Layout) -> _Built:
    values, latent = _correlated(rng, lay.n_rows)
    s = lay.start(rng, BREAK_ROWS)
    # From the break on, b follows its own latent factor: same law, starts where the shared one was.
    own = _ar1(rng, BREAK_ROWS, 0.99, 1.0)
    own = own - own[0] * 0.99 ** np.arange(BREAK_ROWS) + latent[s] * 0.99 ** np.arange(BREAK_ROWS)
    values[s : s + BREAK_ROWS, 1] += 3 * (own - latent[s : s + BREAK_ROWS])
    return values, _times(lay.n_rows, STEP_S), ((s, s + BREAK_ROWS),), False


def _pattern(rng: np.random.Generator, lay: _Layout) -> _Built:
    """One day's peak is missing: over the cycle's upper half around one daily peak in the test part, the
    values stay at the cycle's middle (+ noise); mean and range stay plausible."""
    values, cycle = _daily(rng, lay.n_rows)
    first_peak = int(np.argmax(cycle[:DAY_ROWS]))
    peaks = [p for p in range(first_peak, lay.n_rows, DAY_ROWS)
             if p - DAY_ROWS // 4 >= lay.train_rows + 24 and p + DAY_ROWS // 4 + 32 <= lay.n_rows]
    peak = int(rng.choice(peaks))
    start, end = peak, peak + 1
    while cycle[start - 1] > 0:
        start -= 1
    while end < lay.n_rows and cycle[end] > 0:
        end += 1
    values[start:end, 0] -= DAILY_AMPLITUDE * cycle[start:end]
    return values, _times(lay.n_rows, STEP_S), ((start, end),), False


def _schedule_skip(rng: np.random.Generator, lay: _Layout) -> _Built:
    """One day of the test part, the load is not switched on: it stays off through that day's on period."""
    values, on = _schedule(rng, lay.n_rows)
    spans = []  # each test day's on period, with 48 rows of the test part before it and after it
    for day in range(lay.train_rows // DAY_ROWS, lay.n_rows // DAY_ROWS):
        rows = np.flatnonzero(on[day * DAY_ROWS : (day + 1) * DAY_ROWS]) + day * DAY_ROWS
        if rows[0] >= lay.train_rows + 48 and rows[-1] + 1 + 48 <= lay.n_rows:
            spans.append((int(rows[0]), int(rows[-1]) + 1))
    start, end = spans[int(rng.integers(len(spans)))]
    values[start:end, 0] += SCHEDULE_OFF - SCHEDULE_ON
    return values, _times(lay.n_rows, STEP_S), ((start, end),), False


def _cycle_jump(sign: float) -> _Builder:
    def build(rng: np.random.Generator, lay: _Layout) -> _Built:
        values, _ = _daily(rng, lay.n_rows)
        s = lay.start(rng, DAY_ROWS)
        values[s : s + DAY_ROWS, 0] += sign * CYCLE_JUMP * 2 * DAILY_AMPLITUDE
        return values, _times(lay.n_rows, STEP_S), ((s, s + DAY_ROWS),), False

    return build


def _clean(base: str) -> _Builder:
    def build(rng: np.random.Generator, lay: _Layout) -> _Built:
        n, times = lay.n_rows, _times(lay.n_rows, STEP_S)
        if base == "noise":
            values = rng.normal(10, 1, size=(n, 1))
        elif base == "daily":
            values = _daily(rng, n)[0]
        elif base == "walk":
            values = (10 + np.cumsum(rng.normal(0, 0.02, size=n)) + rng.normal(0, 0.2, size=n))[:, None]
        elif base == "correlated":
            values = _correlated(rng, n)[0]
        elif base == "weekly":
            values, times = _weekly(rng, n), _times(n, 3600)
        elif base == "quantised":
            values = _quantised(rng, n)
        elif base == "irregular":
            values, times = 10 + _ar1(rng, n, 0.8, 1.0)[:, None], _irregular_times(rng, n, lay.train_rows)
        elif base == "setpoint":
            values = _setpoint(rng, lay)
        elif base == "events":
            values = _events(rng, n)
        elif base == "spiky":
            values = _spiky(rng, n)
        elif base == "schedule":
            values = _schedule(rng, n)[0]
        elif base == "commands":  # the events base; event_c is first used after the history
            values = _events(rng, n)
            values[: lay.train_rows, EVENT_CHANNELS] = 0.0
        else:
            raise ValueError(base)
        return values, times, (), False

    return build


_ANOMALIES: dict[str, tuple[str, _Builder]] = {
    "spike": ("daily", _spike),
    "level_up": ("plant", _level(+1.0)),
    "level_down": ("weekly", _level(-1.0)),
    "level_persist": ("irregular", _level_persist),
    "variance": ("noise", _variance),
    "frequency": ("oscillation", _frequency),
    "flatline": ("daily", _flatline),
    "drift": ("plant", _drift),
    "dropout": ("quantised", _dropout),
    "correlation_break": ("correlated", _correlation_break),
    "pattern": ("daily", _pattern),
    "cycle_up": ("daily", _cycle_jump(+1.0)),
    "cycle_down": ("daily", _cycle_jump(-1.0)),
    "shift_beside_events": ("events", _shift_beside_events),
    "schedule_skip": ("schedule", _schedule_skip),
}
_CLEAN = ("noise", "daily", "walk", "correlated", "weekly", "quantised", "irregular", "setpoint", "events", "commands",
          "spiky", "schedule")
_KINDS: dict[str, tuple[str, _Builder]] = {**_ANOMALIES, **{f"clean_{b}": (b, _clean(b)) for b in _CLEAN}}
ANOMALY_KINDS: tuple[str, ...] = tuple(_ANOMALIES)
CLEAN_KINDS: tuple[str, ...] = tuple(f"clean_{b}" for b in _CLEAN)
KINDS: tuple[str, ...] = ANOMALY_KINDS + CLEAN_KINDS
COLUMNS: dict[str, list[str]] = {
    "daily": ["temperature"], "weekly": ["load"], "plant": ["flow", "pressure", "temperature"],
    "noise": ["value"], "walk": ["value"], "oscillation": ["vibration"], "irregular": ["level"],
    "quantised": ["pumps", "flow", "pressure"], "correlated": ["a", "b", "c"],
    "setpoint": ["setpoint", "process_value", "heater_power"],
    "events": ["sensor", "event_a", "event_b", "event_c"],
    "commands": ["sensor", "event_a", "event_b", "event_c"],
    "spiky": ["load"],
    "schedule": ["load"],
}


def layout(base: str, *, quick: bool = False) -> tuple[int, int]:
    """(train_rows, n_rows) of a base: 4 days of 5-minute rows (or 3 weeks of hourly rows) to train on, then
    4 days (3 weeks) of test; ``quick`` halves the 5-minute test part and shortens the weekly one to 2 weeks."""
    if base == "weekly":
        week = 7 * HOURLY_DAY_ROWS
        train, test = TRAIN_WEEKS * week, (QUICK_TEST_WEEKS if quick else TEST_WEEKS) * week
    else:
        train, test = TRAIN_DAYS * DAY_ROWS, (QUICK_TEST_DAYS if quick else TEST_DAYS) * DAY_ROWS
    return train, train + test


def generate(kind: str, seed: int, *, quick: bool = False) -> Series:
    """The series of ``kind`` for ``seed`` (deterministic: numpy's generator seeded by (seed, kind))."""
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}; kinds are {list(KINDS)}")
    base, build = _KINDS[kind]
    train_rows, n_rows = layout(base, quick=quick)
    rng = np.random.default_rng([seed, zlib.crc32(kind.encode())])
    values, times, spans, persists = build(rng, _Layout(train_rows, n_rows))
    frame = pd.DataFrame(values.astype(np.float32), index=times, columns=COLUMNS[base])
    return Series(f"{kind}#{seed}", kind, base, frame, train_rows, spans, persists)


def taxonomy(seeds: Sequence[int], *, kinds: Sequence[str] = KINDS, quick: bool = False) -> list[Series]:
    """Every kind for every seed, kinds in order (each kind x seed is one series)."""
    return [generate(kind, seed, quick=quick) for kind in kinds for seed in seeds]
