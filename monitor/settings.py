"""The one settings object, read only by entry points (CLI commands, pipelines) and passed down by section.

Every field can be set from the environment: ``MONITOR_<SECTION>__<FIELD>``, for example
``MONITOR_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or ``MONITOR_DB__URL=postgresql+psycopg://...``.
Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MONITOR_"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list of brokers.")
    topic: str = Field("sensor-windows", description="Topic of sensor-window messages, keyed by sensor id.")
    dlq_topic: str = Field("sensor-windows.dlq", description="Dead-letter topic for records that fail decoding or validation.")
    group_id: str = Field("monitor", description="Consumer group of `monitor run` processes.")
    client_id: str = Field("monitor", description="Client id reported to the broker.")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a group with no stored offset starts."
    )
    metadata_max_age_ms: int = Field(
        30000, ge=1000, description="How often a consumer refreshes the topic's metadata: partitions added to the "
        "topic are assigned and read within about this long (kafka-python's default: 5 minutes).")
    max_poll_records: int = Field(
        2000, ge=1, description="Records per poll (and per database transaction) at most, while behind: a backlog "
        "is drained in batches this large (throughput)."
    )
    live_poll_records: int = Field(
        500, ge=1, description="Records per poll at most while caught up (lag of the owned partitions at most "
        "max_poll_records): smaller batches make each window durable sooner (latency). Set it to max_poll_records "
        "for one batch size."
    )
    max_partition_fetch_bytes: int = Field(
        2 * 1024 * 1024, ge=1024,
        description="Bytes one fetch returns per partition at most (a record larger than this still comes, alone). "
        "With fetch_max_bytes it bounds the consumer's memory for fetched data: a fetch response is held twice "
        "while it is read, and its records stay in memory until polled (docs/benchmarks.md, round 10).")
    fetch_max_bytes: int = Field(
        16 * 1024 * 1024, ge=1024,
        description="Bytes one fetch response holds at most over all partitions (kafka-python's default is 50 MiB), "
        "so the bound holds however many partitions a consumer owns.")
    poll_timeout_ms: int = Field(500, ge=1, description="How long one poll waits for records.")
    session_timeout_ms: int = Field(10000, ge=1000, description="Group session timeout.")
    stall_timeout_s: float = Field(
        60.0, ge=5.0,
        description="Longest a kafka-python network call may block, or the consumer may stay out of a stable "
        "group membership, before it is replaced (kafka-python 3.0.x wedges; see monitor/ingest/netguard.py).")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Transport of every Kafka client.")
    sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, ...")
    sasl_username: str | None = Field(None, description="SASL user (with sasl_mechanism).")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")
    ssl_cafile: str | None = Field(None, description="CA bundle (PEM) that verifies the brokers.")
    ssl_certfile: str | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    ssl_keyfile: str | None = Field(None, description="Client private key (PEM) for mutual TLS.")

    def client_options(self) -> dict[str, object]:
        """Connection options shared by consumers, producers and admin clients (secrets included)."""
        opts: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            opts["sasl_mechanism"] = self.sasl_mechanism
            opts["sasl_plain_username"] = self.sasl_username
            opts["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value:
                opts[name] = value
        return opts


class DbSettings(BaseModel):
    url: SecretStr = Field(
        SecretStr("sqlite:///monitor.db"),
        description="SQLAlchemy URL. SQLite file by default; PostgreSQL: postgresql+psycopg://user:pw@host:5432/db",
    )
    echo: bool = Field(False, description="Log every SQL statement (debugging).")
    auto_migrate: bool = Field(
        False,
        description="Services apply pending schema migrations on start instead of refusing to run "
        "(an empty SQLite database is always initialised). Production: run `monitor db upgrade` as a step.",
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, le=600,
        description="Bound of opening a PostgreSQL connection (connect_timeout, whole seconds, at least 1); a "
        "black-holed database fails fast instead of holding the consumer (and SIGTERM). SQLite opens a local file.")
    statement_timeout_s: float = Field(
        30.0, gt=0, le=3600,
        description="Bound of one SQL statement: PostgreSQL statement_timeout (and idle_in_transaction_session_timeout: "
        "a client paused inside a transaction, a zombie, loses its locks after it); SQLite busy_timeout (how long a "
        "statement waits for another writer's lock). A statement past it fails like an outage (retry with backoff).")


class ModelSettings(BaseModel):
    path: Path = Field(Path("model.pt"), description="Model artifact used by `monitor run`.")
    window_len: int = Field(32, ge=4, description="Time steps per window.")
    stride: int = Field(4, ge=1, description="Step between training windows cut from a CSV.")
    hidden_size: int = Field(64, ge=2, description="LSTM hidden units per layer.")
    latent_size: int = Field(16, ge=1, description="Size of the latent code between encoder and decoder.")
    num_layers: int = Field(1, ge=1, description="Stacked LSTM layers in encoder and decoder.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout between LSTM layers (training only).")
    epochs: int = Field(40, ge=1, description="Training epochs at most (early stopping may end sooner).")
    batch_size: int = Field(64, ge=1, description="Training mini-batch size in windows.")
    learning_rate: float = Field(3e-3, gt=0, description="Adam learning rate.")
    val_fraction: float = Field(0.2, gt=0.0, lt=0.9, description="Time-ordered tail of the data kept for validation.")
    patience: int = Field(5, ge=1, description="Early-stopping patience in epochs.")
    error_floor: float = Field(
        0.5, ge=0,
        description="Calibration: each channel's error scale is at least this times the median over channels "
        "(an almost perfectly reconstructed, smooth channel does not dominate the score; 0 = off).",
    )
    level_weight: float = Field(
        0.5, ge=0,
        description="Weight of the level term in the score: each channel's window-mean residual, robustly "
        "standardised on the training windows, squared (a shift of a noisy or quantised channel that the squared "
        "error hides; 0 = reconstruction error only). Stored in the artifact. See monitor/core/scoring/scorer.py.",
    )
    linear_weight: float = Field(
        1.0, ge=0,
        description="Weight of the linear (PCA) term in the score: each channel's squared residual outside the "
        "principal components of the training rows (the Q statistic), over its typical value on the training data "
        "(a break of how channels move together, which the autoencoder reconstructs channel by channel; 0 = off). "
        "Stored in the artifact. See monitor/core/scoring/linear.py.",
    )
    linear_variance: float = Field(
        0.9, gt=0, lt=1,
        description="Share of the training rows' variance the linear term's components keep (the rest is watched).",
    )
    tail_balance: float = Field(
        0.99, ge=0, lt=1,
        description="Calibration: a channel whose normal values at this quantile lie more than 20 times above their "
        "median (a sparse command, valve or event channel) is weighted down to that, so its normal events cannot set "
        "the score's spread and hide another channel's change; channels of ordinary noise keep weight 1 (0 = off). "
        "Stored in the artifact. See monitor/core/scoring/train.py balance_tails.",
    )
    event_share: float = Field(
        0.1, ge=0, lt=0.5,
        description="A channel whose training rows hold exactly two values, the rarer in at most this share of them "
        "(a command, alarm, door or valve channel that is off almost always), or one value in every row (a command "
        "the history never used, an idle sensor), is an event channel: it is not judged "
        "itself (weight 0; its effect on the other channels still is) and, with mute_events, not fed to the model. "
        "0 = off. "
        "Stored in the artifact. See monitor/core/scoring/train.py event_channels.",
    )
    drift_ratio: float = Field(
        0.6, ge=0, le=1,
        description="A channel is marked drifting when its drift_span-row moving average keeps more than this share "
        "of its variance in the training rows (a slow process variable such as a temperature), and still more than "
        "half this share with any two neighbouring sixths of the rows left out (one incident in the history is not a "
        "drift), unless it moves by steps (its largest 1 % of row-to-row changes carry more than half of its "
        "movement: a pump count, a mode); drifting channels are re-centred with threshold.drift_rate / drift_k. "
        "0 = none. Stored in the artifact.",
    )
    drift_span: int = Field(20, ge=2, description="Rows of the moving average that tells drifting channels apart.")
    centre_drifting: Literal["auto"] | bool = Field(
        "auto",
        description="Drifting channels enter the model without their window mean: judged by their short-term shape, "
        "their relation to the others, their jumps between windows (the change of the window mean since the "
        "sensor's previous window) and by how far their level lies beyond every level the history showed (the range "
        "term: k SDs of those levels beyond adds level_weight x k^2), never by their distance from a centre: no "
        "offset to learn, no alert held open by a slow variable wandering among levels it held. false: their level "
        "is judged against a centre that follows each sensor outside alerts (threshold.drift_rate). auto (default): "
        "true for a model trained on one sensor's history (`monitor train` on a CSV, backtest, retraining from a "
        "file), false for one trained on several sensors' histories (`monitor train --sensor-column C`, "
        "`--sensors N` with N > 1, retraining from the topic), whose levels span every sensor's, so that a sensor's "
        "shift to a level another sensor holds would be seen at its onset only (docs/quality.md, rounds 23 and 26). "
        "The choice is stored in the artifact.")
    mute_events: bool = Field(
        True,
        description="On/off event channels (event_share: not judged) are not fed to the model either (0, their "
        "training median): the judged channels are reconstructed from the judged channels, so an arrangement of "
        "commands the history did not show cannot raise the score of a normal sensor (docs/quality.md, round 11). "
        "Stored in the artifact.")
    history_screen: float = Field(
        12.0, ge=0,
        description="Training on a history (`monitor train`): a row where a channel lies more than this many robust "
        "SDs from both the median of the 5 rows before it and that of the 5 after it, while no other channel moves "
        "(a spike or a burst of a few rows: an anomaly the history holds), is filled with its neighbourhood's median "
        "for the row statistics and the windows around it are left out of training and calibration (their scores "
        "still count in the training quantile, threshold.train_quantile), so it is never learned as normal. A "
        "channel with more such bursts than 1 % of its rows is not screened (its bursts are its normal behaviour), "
        "nor is an event channel. A channel whose history shows at least 4 such bursts gets a spike allowance: a "
        "later spike no larger than 1.5 times the history's largest, isolated and unexplained by another channel, "
        "is removed before scoring (monitor/core/scoring/spikes.py). A lasting incident is screened too: a run of "
        "rows (at most a sixth of the history, not at its ends) in which one channel holds a level it entered and "
        "left within a few rows, that no stretch of the rest of the history comes near and that no other channel "
        "moves with; its windows are left out of training, calibration and the training quantile, and its rows, "
        "less their lift, are what the row statistics see (monitor/core/scoring/excursions.py). `monitor train` "
        "names the rows, the incidents and the channels with an allowance; 0 = off.")
    stillness: bool = Field(
        True,
        description="Judge a window far calmer than any of the history (a sensor stuck at a value: its rows stop "
        "changing) however well the model reconstructs it: the stillness term of the score, 0 for every window as "
        "lively as the history's; a channel that held still at some time in the history is not judged so. Stored in "
        "the artifact (monitor/core/scoring/scorer.py).")
    move_allowance: bool = Field(
        True,
        description="Score a window holding a step of the kind the channel's history showed recurring (a valve, a "
        "mode switch, a sensor following its commands: a change from one row to the next far beyond the channel's "
        "usual, in at least 4 separate episodes, whose windows score beyond the threshold's reach) against the "
        "history's windows with such a step, and the channel's quiet windows against its quiet windows' error: the "
        "autoencoder reconstructs a step at an arbitrary row far less closely than noise, so without it every "
        "normal step alerts. A step larger than 1.5 times any the history showed, and every window without a step, "
        "is judged in full. Fitted once on the history; stored in the artifact (monitor/core/scoring/scorer.py).")
    combine: str = Field(
        "mean", pattern=r"^(mean|max|rms|top[1-9][0-9]*)$",
        description="How the per-channel values make a window's score: mean, rms, max or topK (mean of the K "
        "largest). Stored in the artifact.")
    auto_shape: bool = Field(
        True,
        description="Train on short histories as they are: window_len and stride are the largest values, shrunk so "
        "that a window is at most 1/32 of the training rows and there are ~256 training windows (reported).")
    seasonal: bool = Field(
        True,
        description="Fit each channel's daily/weekly profile (when the training rows span >= 2 cycles and it "
        "predicts held-out rows) and remove it before the model: cycles longer than a window. Stored in the artifact.")
    seed: int = Field(0, description="Random seed of training (same seed, same weights).")
    device: str = Field(
        "cpu", description="torch device for training and scoring (cpu, cuda, cuda:N, mps); one this machine does not "
        "have is a configuration error.")
    threads: int = Field(0, ge=0, description="torch intra-op threads; 0: one in `monitor run` (scale out with processes), torch's default elsewhere.")


class ThresholdSettings(BaseModel):
    k_enter: float = Field(3.0, gt=0, description="Open level: mean + k_enter * std of the log score.")
    k_instant: float = Field(5.0, gt=0, description="A single window this high opens an alert at once.")
    k_exit: float = Field(2.0, gt=0, description="Close level: mean + k_exit * std of the log score.")
    fading: float = Field(0.002, gt=0, lt=1, description="River EW fading factor of the score statistics.")
    min_std: float = Field(0.05, gt=0, description="Floor of the log-score std (guards against collapse).")
    max_std: float = Field(
        1.0, gt=0,
        description="Ceiling of the log-score std: the open level stays within exp(k_enter * max_std) of a sensor's "
        "typical score, so a wide or damaged calibration cannot make a threshold deaf.")
    tail_risk: float = Field(
        0.0, ge=0, lt=1,
        description="Open level at least the log score that a window of normal data exceeds with this probability, "
        "from a generalised Pareto fit of the calibration scores' upper tail (peaks over threshold): scores are "
        "heavier-tailed than a Gaussian, so mean + k_enter * std alone alarms on normal noise. 0 = off.")
    train_quantile: float = Field(
        0.99, ge=0, le=0.999,
        description="Open level at least this quantile of the training windows' log scores (stored in the model "
        "from 0.9 to 0.999): normal behaviour the model reconstructs badly (a second mode of scores, such as a "
        "quantised channel's steps) makes a share of the training windows score high, and a threshold below it "
        "would alarm on every such normal window. Bounded like the tail: at most the instant level. Models trained "
        "before it store none: no floor. 0 = off.")
    warmup_windows: int = Field(
        0, ge=0,
        description="Warm-up (probation) of a new sensor, in windows: it never alerts, and at the end its threshold "
        "statistics are set from its own scores (median and MAD), bounded by the model's calibration. 0 = off "
        "(thresholds start from the calibration and may alert at once).")
    smoothing: float = Field(1.0, gt=0, le=1, description="EWMA weight of the newest score (1 = no smoothing).")
    recentre_rate: float = Field(
        0.01, ge=0, lt=1,
        description="Per window, how fast each channel's input centre follows slow drift (EW weight; 0 = off). "
        "See monitor/core/scoring/baseline.py.",
    )
    recentre_k: float = Field(
        2.0, gt=0,
        description="A channel's centre learns only while its window mean is within this many scaler units of it "
        "(steps and excursions are not learned).",
    )
    drift_rate: float = Field(
        0.05, ge=0, lt=1,
        description="recentre_rate of the channels the model marks drifting (model.drift_ratio): their level is "
        "followed, so they are judged by their short-term behaviour and their relation to the other channels.",
    )
    drift_k: float = Field(6.0, gt=0, description="recentre_k of the drifting channels.")
    drift_pace: float = Field(
        0.0, ge=0,
        description="During an alert, a drifting channel's input centre may still follow its level, inside its gate, "
        "at most this many times the fastest pace its level moved in the training rows (per row elapsed). 0 = off "
        "(the default): nothing moves during an alert. 1 keeps a slow process variable (a temperature) from "
        "holding an alert open for ever by drifting on at its usual pace, but a fault that moves such a channel "
        "slowly is then partly learned (docs/quality.md, variant 28).",
    )
    adopt_after_s: float = Field(
        0.0, ge=0,
        description="The horizon: once an alert has been open this long (window time, from its first window), the "
        "sensor's current level becomes its new normal: the input centre of every channel outside its re-centring "
        "gate (recentre_k / drift_k) moves to each further window's level until the alert closes. 0 = never (the default): an anomaly never teaches the detector that it is "
        "normal, and a lasting change of operating point stays an alert until an operator gives the verdict "
        "new_normal. Only levels are adopted: a changed shape, variance or correlation keeps alerting.",
    )
    carry_on_swap: bool = Field(
        True,
        description="On a model swap each sensor's threshold keeps what it learned online: its statistics are mapped to "
        "the new model's score scale through the two models' calibrations (a sensor 0.5 std above the old model's "
        "normal sits 0.5 std above the new one's). false: re-warm every sensor from the new calibration, as a "
        "sensor seen for the first time.",
    )

    @field_validator("train_quantile")
    @classmethod
    def _stored_quantile(cls, value: float) -> float:
        if value != 0 and not 0.9 <= value <= 0.999:
            raise ValueError("must be 0 (off) or between 0.9 and 0.999: the quantiles a model stores")
        return value


class AlertSettings(BaseModel):
    min_hits: int = Field(2, ge=1, description="Consecutive windows above the open level that open an alert.")
    min_rows: float = Field(
        8.0, ge=0,
        description="Rows of new data those consecutive windows must bring before an alert opens (besides min_hits): "
        "windows cut at every row overlap, so two of them in a row are nearly one piece of evidence; counted in rows, "
        "the persistence asked for does not depend on how densely the producer cuts windows (non-overlapping windows "
        "of 8 rows or more meet it at once). The instant level opens at once regardless. 0 = off.")
    min_normal: int = Field(3, ge=1, description="Consecutive windows below the close level that close it.")
    cooldown_s: float = Field(0.0, ge=0, description="After a close, a new alert for the sensor waits this long.")
    top_channels: int = Field(3, ge=1, description="Contributing channels recorded per alert.")


class RunSettings(BaseModel):
    max_record_bytes: int = Field(1_000_000, ge=1024, description="Larger records go to the dead-letter topic.")
    idle_exit_s: float | None = Field(None, description="Exit after this long without records (demo, tests).")
    metrics_port: int | None = Field(None, description="Serve Prometheus metrics (and /healthz) on this port.")
    workers: int = Field(
        1, ge=1, le=256,
        description="Consumer processes `monitor run` starts on this host, one group member each (one per core: "
        "a consumer is bound by one core). With a metrics port P, worker i serves it on P + i. See monitor/consumer/workers.py.")
    liveness_timeout_s: float = Field(
        120.0, ge=10.0,
        description="/healthz on the metrics port answers 503 once the poll loop has not turned for this long.")
    failing_batch_timeout_s: float = Field(
        300.0, ge=10.0,
        description="/healthz answers 503 with the reason once batches have kept failing (database down or refusing, "
        "dead letters undeliverable, offsets fenced) for this long without one becoming durable, or the broker has "
        "not answered for this long (no heartbeat answered by the group coordinator, offset commits failing).")
    close_timeout_s: float = Field(
        2.0, gt=0, le=5, description="Bound of each Kafka call on shutdown (close, final flush); keeps exit < 10 s."
    )
    shutdown_timeout_s: float = Field(
        8.0, gt=0, le=600,
        description="Longest `monitor run` takes to exit after SIGTERM/SIGINT. Past it (a black-holed database or "
        "broker holds a call that cannot be interrupted) it exits at once, status 0, without committing anything "
        "more: the batch in flight is read again on restart. Keep it under the orchestrator's grace period.")
    overlap: bool | Literal["auto"] = Field(
        "auto",
        description="Score and commit a batch on a second thread while the loop polls and decodes the next; same "
        "delivery order and guarantees. auto (default): as `decode_process` resolves, only while behind with "
        "auto (a second thread alone gains nothing: the loop and the worker share one GIL).",
    )
    decode_process: bool | Literal["auto"] = Field(
        "auto",
        description="Decode each poll's records in a second process (spawned; killed with the consumer), so that "
        "with `overlap` decoding and scoring run on two cores; the same windows, order and guarantees. If the "
        "child fails, the consumer decodes in its own thread from then on. auto (default): on when each consumer "
        "of the host has a CPU beyond its scoring threads (usable CPUs, cgroup quota included, / `workers` >= "
        "`model.threads` + 1), off when every core runs a consumer (there it is slower), and used only while the "
        "consumer is behind (a full poll waits in the broker): caught up, a batch at a time in the consumer's "
        "thread (latency). The child starts with the first batch that uses it: a consumer that is never behind "
        "never starts one. true: at every batch. docs/benchmarks.md, rounds 11 and 13.",
    )
    max_sensors_in_memory: int = Field(
        20_000, ge=0,
        description="Sensors whose state a consumer holds in memory at most (about 15 KiB each: docs/benchmarks.md, "
        "`python -m pipelines.bench.memory`); beyond it the least recently seen ones without an open alert are dropped after a durable batch and read "
        "back from the database when their next window comes. 0 = no bound.")
    fault: str | None = Field(
        None, description="TEST ONLY (fault suite): '<point>:<probability>[:kill|term|stop[:seed]]' and/or "
        "'break_fence' (the suite's self-test), see monitor/ingest/faults.py."
    )


class ApiSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Address `monitor serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port of `monitor serve`.")
    public_url: str | None = Field(None, description="Base URL users reach the API at (printed links); default http://host:port.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS; empty = CORS off.")
    context_windows: int = Field(8, ge=0, le=64, description="Windows shown before and after an alert.")
    kafka_timeout_s: float = Field(
        10.0, gt=0, description="How long reading an alert's context from Kafka may take (connecting included); "
        "the alert is then answered without context.")
    context_concurrency: int = Field(
        4, ge=1, le=64,
        description="Alert contexts (Kafka read + re-scoring) built at once, each on a thread of its own pool; a "
        "request for one more is answered 503 with Retry-After, so /healthz and /readyz are never starved.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body; a larger one is refused with 413 before it is read.")

class RegistrySettings(BaseModel):
    model_name: str = Field("default", description="Model name in the registry that `monitor run` serves and retraining replaces.")
    check_interval_s: float = Field(
        5.0, gt=0, description="How often a running consumer reads the active-model pointer (hot swap latency)."
    )
    shadow_min_windows: int = Field(
        1000, ge=0, description="Shadow period before a model replaces an active one: a retrain whose candidate passes "
        "the gate makes it the shadow (scored alongside the active model by the running consumers, never alerting) "
        "and `monitor scheduler` promotes it only after this many windows judged by both, if it was no noisier and "
        "no deafer; `monitor models promote` refuses a version shadowed over fewer (--force overrides). The first "
        "model of a name needs none. 0 = promote a passing candidate at once.")


class RetrainSettings(BaseModel):
    lookback_s: float = Field(7 * 86400.0, gt=0, description="Scheduled retrains read the topic's last this many seconds.")
    holdout_fraction: float = Field(
        0.2, gt=0.0, lt=0.9, description="Most recent part of the time range kept out of training for the gate."
    )
    warm_start: bool = Field(False, description="Start training from the active model's weights and scaler.")
    max_train_rows: int = Field(
        20_000, ge=100, description="Train on at most this many rows (the most recent windows before the hold-out)."
    )
    min_windows: int = Field(64, ge=8, description="Fewer training windows than this (after exclusions) fail the run.")
    min_holdout_windows: int = Field(16, ge=1, description="The gate rejects a candidate with a smaller hold-out.")
    max_error_ratio: float = Field(
        1.05, gt=0, description="Gate: candidate's hold-out reconstruction error at most this times the best of the "
        "active model's and the `gate_history` earlier versions' errors on the same hold-out.")
    gate_history: int = Field(
        3, ge=0, description="Gate: also compare against this many versions active before the current one (no slide: "
        "quality cannot drift down by repeated small losses). 0 = the active model alone.")
    reference_context: int = Field(
        32, ge=0, description="Gate: windows of the sensor before a confirmed alert kept with it in the reference set "
        "(its threshold and input centres settle on them before the alert).")
    min_new_windows: int = Field(
        64, ge=0, description="A run with fewer windows newer than the active model's training range is `skipped` "
        "(nothing trained, nothing promoted); `monitor retrain --force` trains anyway. 0 = never skip.")
    max_alert_rate: float = Field(
        0.01, ge=0, description="Gate: alerts opened per hold-out window (normal data) allowed when above the active's."
    )
    schedule: str = Field(
        "86400", description="`monitor scheduler`: an interval in seconds (e.g. 3600) or a cron expression (e.g. '0 3 * * *')."
    )
    drift: bool = Field(True, description="`monitor scheduler` also retrains when ADWIN detects drift in the scores.")
    drift_delta: float = Field(0.002, gt=0, lt=1, description="ADWIN confidence parameter (smaller = fewer detections).")
    drift_min_gap_s: float = Field(3600.0, ge=0, description="No drift-triggered retrain sooner than this after the last run.")
    tick_s: float = Field(5.0, gt=0, description="Scheduler loop period: due check, drift polling, lease renewal.")
    lease_s: float = Field(120.0, gt=1, description="Single-flight lease duration; renewed while a retrain runs.")


class LogSettings(BaseModel):
    format: Literal["text", "json"] = Field(
        "text", description="Log line format of the monitor's processes: text (one readable line) or json (one JSON "
        "object per line: time, level, name, message, and the event's fields, e.g. event=alert_opened, sensor_id, "
        "severity, peak, for a log pipeline).")


class Settings(BaseSettings):
    """All settings of the monitor. Environment: MONITOR_<SECTION>__<FIELD>."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore")

    kafka: KafkaSettings = KafkaSettings()
    db: DbSettings = DbSettings()
    model: ModelSettings = ModelSettings()
    threshold: ThresholdSettings = ThresholdSettings()
    alert: AlertSettings = AlertSettings()
    run: RunSettings = RunSettings()
    api: ApiSettings = Field(default_factory=ApiSettings)
    log_level: LogLevel = Field(
        "INFO", description="Log level of the monitor's processes: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case).")
    log: LogSettings = LogSettings()
    registry: RegistrySettings = RegistrySettings()
    retrain: RetrainSettings = RetrainSettings()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() in typing.get_args(LogLevel):
            return value.upper()
        return value  # an error that quotes the value as given


def settings_problems(exc: ValidationError) -> list[str]:
    """One line per problem of a settings ValidationError: ``path (ENV_VAR): message (got 'value')``.

    The value is left out for secrets. A value that fits no member of a union (``true``, ``false`` or ``auto``)
    is one line that names what each member wanted."""
    lines: dict[str, tuple[list[str], str]] = {}
    for error in exc.errors():
        model: type[BaseModel] | None = Settings
        names: list[str] = []
        secret = False
        for part in error["loc"]:
            field = model.model_fields.get(part) if model is not None and isinstance(part, str) else None
            if field is None:
                break  # a list index or a union member: the setting is the path so far
            names.append(str(part))
            annotation = field.annotation
            secret = annotation is SecretStr or SecretStr in typing.get_args(annotation)
            model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        where = f"{'.'.join(names)} ({ENV_PREFIX}{'__'.join(names).upper()})" if names else "settings"
        value = error.get("input")
        got = f" (got {value!r})" if isinstance(value, (str, int, float)) and not secret else ""
        msgs, _ = lines.setdefault(where, ([], got))
        msgs.append(error["msg"])
    return [f"{where}: {'; or: '.join(msgs)}{got}" for where, (msgs, got) in lines.items()]
