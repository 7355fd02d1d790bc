"""The runner's place in the consumer group: its Kafka consumer client, the rebalance listener, the partitions
it owns with their stored offsets, and the replacement of a client whose network thread stalled (see
``monitor.ingest.netguard``).

Rebalance callbacks run on kafka-python's network thread, where blocking consumer calls raise: the listener
only queues the change; the runner applies it on its own thread (see ``monitor.consumer.runner``).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import MemberState

from monitor.errors import BrokerError
from monitor.observe import health

log = logging.getLogger(__name__)

MAX_REPLACE_BACKOFF_S = 30.0
SETTLE_METADATA_S = 5.0  # longest wait for the group's metadata snapshot before the first join

AssignmentChange = tuple[str, set[TopicPartition]]  # ("revoked" | "assigned", partitions)


class RebalanceQueue(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    """Records assignment changes for the loop; does no blocking work (runs on the network thread)."""

    def __init__(self) -> None:
        self.changes: queue.SimpleQueue[AssignmentChange] = queue.SimpleQueue()

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.changes.put(("revoked", set(revoked)))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.changes.put(("assigned", set(assigned)))


class Assignment:
    """The partitions this member owns and, per partition, the next offset stored in the database with the
    output (None: nothing stored yet). Pure bookkeeping: the runner seeks, commits and updates metrics."""

    def __init__(self) -> None:
        self.owned: set[int] = set()
        self.durable: dict[int, int | None] = {}  # partition -> next offset stored in the database

    def assign(self, partitions: set[int]) -> None:
        self.owned |= partitions

    def revoke(self, partitions: set[int]) -> None:
        for p in partitions:
            self.durable.pop(p, None)
        self.owned -= partitions

    def is_new(self, partition: int, offset: int) -> bool:
        """Whether a polled record is owned and not yet durable (older ones were read before a seek)."""
        if partition not in self.owned:
            return False
        durable = self.durable.get(partition)
        return durable is None or offset >= durable

    def lag(self, partition: int, high: int) -> int:
        """Records between the stored offset (0 before the first commit) and the high watermark ``high``."""
        return max(high - (self.durable.get(partition) or 0), 0)


def close_consumer(consumer: KafkaConsumer, timeout_s: float) -> None:
    """Close without committing (the database holds the offsets); errors are logged, not raised.

    When the orderly close fails (a wedged client: leaving the group timed out), kafka-python 3.0.12 skips closing
    its network layer, and the client's I/O thread would outlive it: once the wedge cleared it would go on
    heartbeating as a ghost group member holding partitions nobody polls, and fetching metadata for ever. Its
    network layer is then stopped directly, on a thread of its own: stopping waits for the I/O thread's current
    call, which a wedge may hold, so the caller waits ``timeout_s`` for it at most (shutdown stays bounded)."""
    try:
        consumer.close(autocommit=False, timeout_ms=int(timeout_s * 1000))
    except (KafkaError, RuntimeError, OSError) as exc:  # nothing left to save: the database holds it
        log.info("consumer close: %s; stopping its network thread", exc)
        net: Any = getattr(consumer, "_net", None)  # kafka-python 3.x's NetworkSelector (private)
        if net is not None:
            cluster: Any = getattr(getattr(consumer, "_client", None), "cluster", None)
            stopper = threading.Thread(target=_stop_network, args=(net, cluster), name="monitor-consumer-net-stop",
                                       daemon=True)
            stopper.start()
            stopper.join(timeout_s)


def _stop_network(net: Any, cluster: Any) -> None:
    """Close the client's metadata first, then its network, as the client's own close does.

    Closing the network alone leaves kafka-python 3.0.12's metadata refresh loop running: if it was woken while
    the I/O thread was wedged (a metadata update asked for), the I/O thread runs it after the wedge, its timer
    is refused by the closed network, and the loop retries without ever yielding ("Concurrent access to
    WakeupNotifier!", millions of times), so the I/O thread never ends. The loop stops once metadata is closed."""
    for close in ((cluster.close,) if cluster is not None else ()) + (net.close,):
        try:  # each on its own: a failed metadata close must not leave the network running
            close()
        except Exception as error:  # noqa: BLE001 - nothing more can be done for a client given up
            log.info("consumer network thread: %s", error)


class GroupMember:
    """One consumer client subscribed to ``topic``; ``replace`` swaps in a new client built by ``factory``."""

    def __init__(self, consumer: KafkaConsumer, topic: str, *,
                 factory: Callable[[], KafkaConsumer] | None = None, close_timeout_s: float = 2.0) -> None:
        self.consumer = consumer
        self.topic = topic
        self.factory = factory  # builds a replacement when a consumer stalls (netguard)
        self.close_timeout_s = close_timeout_s
        self.listener = RebalanceQueue()
        self.dead = False  # the client was given up (closing in the background): never touch it again
        self._unstable_since: float | None = None  # monotonic time it stopped being a stable member
        self._built_at = time.monotonic()  # when the current client was built: its answers come after

    def next_change(self) -> AssignmentChange | None:
        """The oldest queued assignment change of the current client, or None."""
        try:
            return self.listener.changes.get_nowait()
        except queue.Empty:
            return None

    def subscribe(self) -> None:
        # Topic metadata first: a group leader without it assigns nothing ("No partition metadata") and
        # kafka-python 3.x can then sit in the follow-up rebalance for minutes.
        self.consumer.partitions_for_topic(self.topic)
        self.consumer.subscribe([self.topic], listener=self.listener)
        self._settle_group_metadata()

    def _settle_group_metadata(self, timeout_s: float = SETTLE_METADATA_S) -> None:
        """Wait (bounded) until the group coordinator's view of the topic's partitions is current.

        kafka-python 3.0.12 takes the coordinator's metadata snapshot when the client is built (no topics yet)
        and retakes it only on the next metadata response. ``subscribe`` asks for none when the topic is
        already tracked (``partitions_for_topic`` above tracked it), so the first join's leader assigned
        against an empty snapshot, saw it change half a second later and rejoined: a second rebalance at every
        start. It is the one kafka-python was seen sitting in until the stall watchdog replaced the client
        (60 s blind; the live fuzz suite, PostgreSQL leg). A fresh metadata response before the first poll
        makes the first assignment the last. Private attributes, read only where this version has them."""
        cluster: Any = getattr(self.consumer, "_cluster", None)
        coordinator: Any = getattr(self.consumer, "_coordinator", None)
        if cluster is None or not isinstance(getattr(coordinator, "_metadata_snapshot", None), dict):
            return
        if coordinator._metadata_snapshot.get(self.topic):
            return
        cluster.request_update()
        deadline = time.monotonic() + timeout_s
        while not coordinator._metadata_snapshot.get(self.topic) and time.monotonic() < deadline:
            time.sleep(0.005)
        if not coordinator._metadata_snapshot.get(self.topic):  # most often: the topic does not exist (yet)
            log.warning("the broker knows no partitions of topic %s after %.0f s: joining the group, which is "
                        "assigned them once the topic exists (`monitor topics create` creates it)", self.topic,
                        timeout_s)

    def close(self) -> None:
        if not self.dead:
            close_consumer(self.consumer, self.close_timeout_s)

    def _give_up(self, thread_name: str | None = None) -> None:
        self.dead = True  # its close may stall as well: done in the background, never waited for
        threading.Thread(target=close_consumer, args=(self.consumer, self.close_timeout_s),
                         name=thread_name, daemon=True).start()

    def unstable_for(self, now: float) -> float:
        """Seconds this client has not been a stable group member (0 while it is one).

        A stable member with no partitions (more members than partitions) is fine; a member stuck unjoined or
        rebalancing is not: kafka-python 3.0.12 was seen sitting in a rebalance for minutes after an early
        revoke, polling without ever rejoining (fault suite, scenario 3)."""
        # The coordinator's attribute, read without its lock (``group_metadata()`` takes the lock, which a
        # wedged network thread may hold); the public snapshot where the attribute is missing.
        coordinator: Any = getattr(self.consumer, "_coordinator", None)
        state = getattr(coordinator, "state", None) or self.consumer.group_metadata().state
        if state == MemberState.STABLE:
            self._unstable_since = None
            return 0.0
        if self._unstable_since is None:
            self._unstable_since = now
        return now - self._unstable_since

    def coordinator_silence(self, now: float) -> tuple[float, bool]:
        """(seconds since the group coordinator last answered the current client, whether it ever has): a
        heartbeat answered, the coordinator found, the group joined; since the client was built when none has.
        A black-holed broker answers nothing and kafka-python's polls just come back empty, so this is how the
        loop learns it is blind (``/healthz``, see monitor.observe.health). kafka-python's heartbeat bookkeeping, read
        without a lock; (0, True) where a client has none."""
        heartbeat: Any = getattr(getattr(self.consumer, "_coordinator", None), "heartbeat", None)
        if heartbeat is None:
            return 0.0, True
        # last_reset is set when the client is built (no answer) and when a coordinator is found or a join ends
        answered = max(heartbeat.last_receive, heartbeat.last_reset if heartbeat.last_reset > self._built_at
                       else -math.inf)
        if answered == -math.inf:
            return max(0.0, now - self._built_at), False
        return max(0.0, now - answered), True

    def session_timeout_s(self) -> float:
        return float(getattr(self.consumer, "config", {}).get("session_timeout_ms", 10_000)) / 1000.0

    def replace(self, stop: threading.Event, sleep: Callable[[float], Any]) -> None:
        """Drop the stalled client and join the group with a new one, retrying with backoff (1 s doubling to
        30 s) until it subscribes or ``stop`` is set. The caller has already revoked every partition."""
        assert self.factory is not None, "the caller checks that a replacement can be built"
        self._give_up("monitor-stalled-consumer-close")
        self._unstable_since = None
        self.listener = RebalanceQueue()  # the old client's late callbacks must not touch the new assignment
        delay = 1.0
        while not stop.is_set():
            health.beat()  # retrying is the loop at work (/healthz)
            try:
                self.consumer = self.factory()
                self._built_at = time.monotonic()
                self.dead = False
                self.subscribe()
                log.info("replacement consumer subscribed to %s", self.topic)
                return
            except (BrokerError, KafkaError) as error:
                log.warning("replacement consumer failed (%s): retrying in %.0f s", error, delay)
                if not self.dead:
                    self._give_up()
                sleep(delay)
                delay = min(delay * 2, MAX_REPLACE_BACKOFF_S)
