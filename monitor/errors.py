"""The monitor's one error hierarchy.

    MonitorError
    ├── ConfigError             settings or arguments that cannot work (not retriable)
    ├── DataError               input data unusable for the requested work (too little data, no channels)
    ├── ArtifactError           a model artifact that is corrupt, of another format, or mismatched
    ├── CancelledRunError       a long run (a retrain) stopped on request, e.g. its scheduler lost the lease
    └── ServiceError            an external service failed (retriable unless told otherwise)
        ├── BrokerError         Kafka unreachable or refusing
        └── StoreError          the SQL database unreachable or refusing
            └── StoreRejectedError  the database refused the data itself (not retriable as it is)

Bad input records are data, not crashes: the decoder returns a `DecodeFailure` (see `monitor.core.contract`)
that the consumer routes to the dead-letter topic.
Library errors are wrapped at the seam with ``raise OwnError(...) from exc``.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error the monitor raises on purpose."""

    retriable: bool = False


class ConfigError(MonitorError):
    """Settings or arguments that cannot work."""


class DataError(MonitorError):
    """Input data that cannot serve the requested work."""


class ArtifactError(MonitorError):
    """A model artifact that is corrupt, of an unknown format, or does not match the data."""


class CancelledRunError(MonitorError):
    """A long run stopped cooperatively on request (checked between its steps and epochs)."""


class ServiceError(MonitorError):
    """An external service failed; usually worth retrying."""

    retriable = True


class BrokerError(ServiceError):
    """Kafka is unreachable or refused the request."""


class StoreError(ServiceError):
    """The SQL database is unreachable or refused the request."""


class StoreRejectedError(StoreError):
    """The database refused the data (a constraint, a value it cannot store), not an outage: the same write
    fails again however often it is retried. The consumer bisects the batch to find the records behind it."""

    retriable = False

