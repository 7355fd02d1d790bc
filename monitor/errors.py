"""The monitor's one error hierarchy.

    MonitorError                    HTTP   CLI
    ├── ConfigError                  422    2   settings or arguments that cannot work (not retriable)
    ├── DataError                    422    2   input data unusable for the requested work (too little data)
    ├── ArtifactError                500    2   a model artifact that is corrupt, of another format, or mismatched
    ├── CancelledRunError            503    2   a long run (a retrain) stopped on request (its scheduler lost the lease)
    ├── ApiError                   its own  2   a request answered with its own status (401/403 keys, 413, 422, 503 busy)
    └── ServiceError                 503    2   an external service failed (retriable unless told otherwise)
        ├── BrokerError              503    2   Kafka unreachable or refusing
        └── StoreError               503    2   the SQL database unreachable or refusing
            ├── StoreRejectedError   503    2   the database refused the data itself (not retriable as it is)
            ├── NotFoundError        404    2   what was asked for is not stored (an alert id)
            ├── ConflictError        409    2   the action does not fit the stored state (acknowledging a resolved alert)
            │   └── PromotionConflict 409   2   the active model changed while a promotion was prepared
            └── StaleOffsetError     503    2   the consumer's fence: another member moved a partition's stored offset
                └── StaleStateError  503    2   ... or a sensor's stored state (operator feedback, another member)

`http_answer` and `exit_code` below are the one mapping: the API answers every MonitorError through the first
(``{"error": code, "detail": message}``), the command line exits with the second after ``error: message``.

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



class ApiError(MonitorError):
    """A request the API answers with its own status and error code (``{"error": code, "detail": text}``): a
    missing, unknown or revoked key (401), a key without the scope (403), a body too large (413), a malformed
    cursor (422), all alert-context slots busy (503)."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


class NotFoundError(StoreError):
    """What was asked for is not stored (an alert id, a model version)."""

    retriable = False


class ConflictError(StoreError):
    """The action does not fit the stored state (e.g. acknowledging a resolved alert)."""

    retriable = False


class PromotionConflict(ConflictError):
    """The active pointer moved while a promotion was prepared (someone else promoted first)."""


class StaleOffsetError(StoreError):
    """Another consumer advanced a partition this batch read from: the batch is dropped, not written."""

    retriable = False


class StaleStateError(StaleOffsetError):
    """A sensor's stored state changed under the consumer (operator feedback, or another consumer that received
    windows of the same sensor, bumped its revision): the batch is dropped; the consumer re-reads the state and
    replays from the stored offsets."""


_HTTP: tuple[tuple[type[MonitorError], int, str], ...] = (
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (StoreError, 503, "database_unavailable"),
    (BrokerError, 503, "broker_unavailable"),
    (ServiceError, 503, "service_unavailable"),
    (CancelledRunError, 503, "cancelled"),
    (ConfigError, 422, "invalid_request"),
    (DataError, 422, "invalid_request"),
)


def http_answer(exc: MonitorError) -> tuple[int, str]:
    """The HTTP status and error code the API answers ``exc`` with (the most specific row of the table above)."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code
    for kind, status, code in _HTTP:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal_error"


def exit_code(exc: MonitorError) -> int:
    """The exit status of a command that fails with ``exc`` (every MonitorError: 2, after ``error: message``;
    a command whose work itself failed, e.g. a retrain with outcome ``failed``, exits 1)."""
    return 2
