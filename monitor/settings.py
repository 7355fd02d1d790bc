"""The one settings object, read only by entry points (CLI commands, pipelines) and passed down by section.

Every field can be set from the environment: ``MONITOR_<SECTION>__<FIELD>``, for example
``MONITOR_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or ``MONITOR_DB__URL=postgresql+psycopg://...``.
Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list of brokers.")
    topic: str = Field("sensor-windows", description="Topic of sensor-window messages, keyed by sensor id.")
    dlq_topic: str = Field("sensor-windows.dlq", description="Dead-letter topic for records that fail decoding or validation.")
    group_id: str = Field("monitor", description="Consumer group of `monitor run` processes.")
    client_id: str = Field("monitor", description="Client id reported to the broker.")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a group with no stored offset starts."
    )
    max_poll_records: int = Field(2000, ge=1, description="Records fetched per poll at most.")
    poll_timeout_ms: int = Field(500, ge=1, description="How long one poll waits for records.")
    session_timeout_ms: int = Field(10000, ge=1000, description="Group session timeout.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, ...")
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

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


class ModelSettings(BaseModel):
    path: Path = Field(Path("model.pt"), description="Model artifact used by `monitor run`.")
    window_len: int = Field(32, ge=4, description="Time steps per window.")
    stride: int = Field(4, ge=1, description="Step between training windows cut from a CSV.")
    hidden_size: int = Field(64, ge=2)
    latent_size: int = Field(16, ge=1)
    num_layers: int = Field(1, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    val_fraction: float = Field(0.2, gt=0.0, lt=0.9, description="Time-ordered tail of the data kept for validation.")
    patience: int = Field(5, ge=1, description="Early-stopping patience in epochs.")
    seed: int = 0
    device: str = "cpu"
    threads: int = Field(0, ge=0, description="torch intra-op threads; 0 keeps torch's default.")


class ThresholdSettings(BaseModel):
    k_enter: float = Field(3.0, gt=0, description="Open level: mean + k_enter * std of the log score.")
    k_instant: float = Field(5.0, gt=0, description="A single window this high opens an alert at once.")
    k_exit: float = Field(2.5, gt=0, description="Close level: mean + k_exit * std of the log score.")
    fading: float = Field(0.002, gt=0, lt=1, description="River EW fading factor of the score statistics.")
    min_std: float = Field(0.05, gt=0, description="Floor of the log-score std (guards against collapse).")
    smoothing: float = Field(1.0, gt=0, le=1, description="EWMA weight of the newest score (1 = no smoothing).")


class AlertSettings(BaseModel):
    min_hits: int = Field(2, ge=1, description="Consecutive windows above the open level that open an alert.")
    min_normal: int = Field(3, ge=1, description="Consecutive windows below the close level that close it.")
    cooldown_s: float = Field(0.0, ge=0, description="After a close, a new alert for the sensor waits this long.")
    top_channels: int = Field(3, ge=1, description="Contributing channels recorded per alert.")


class RunSettings(BaseModel):
    max_record_bytes: int = Field(1_000_000, ge=1024, description="Larger records go to the dead-letter topic.")
    idle_exit_s: float | None = Field(None, description="Exit after this long without records (demo, tests).")
    metrics_port: int | None = Field(None, description="Serve Prometheus metrics on this port.")
    close_timeout_s: float = Field(
        2.0, gt=0, le=5, description="Bound of each Kafka call on shutdown (close, final flush); keeps exit < 10 s."
    )
    fault: str | None = Field(
        None, description="TEST ONLY (fault suite): '<point>:<probability>[:kill|term[:seed]]', see monitor/ingest/faults.py."
    )


class Settings(BaseSettings):
    """All settings of the monitor. Environment: MONITOR_<SECTION>__<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", env_nested_delimiter="__", extra="ignore")

    kafka: KafkaSettings = KafkaSettings()
    db: DbSettings = DbSettings()
    model: ModelSettings = ModelSettings()
    threshold: ThresholdSettings = ThresholdSettings()
    alert: AlertSettings = AlertSettings()
    run: RunSettings = RunSettings()
    log_level: str = "INFO"
