"""Group membership bookkeeping of the consumer loop (no broker: an unconnected client's state set by hand)."""

from __future__ import annotations

from kafka import KafkaConsumer
from kafka.structs import MemberState

from monitor.ingest.membership import GroupMember


def test_a_member_stuck_out_of_a_stable_group_is_timed_from_when_it_left() -> None:
    """GroupMember.unstable_for on a real (unconnected) KafkaConsumer whose coordinator state is set by hand."""
    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:1", group_id="g", api_version=(2, 8),
                             request_timeout_ms=1000, connections_max_idle_ms=2000)
    try:
        member = GroupMember(consumer, "t")
        consumer._coordinator.state = MemberState.REBALANCING
        assert member.unstable_for(100.0) == 0.0  # the clock starts now
        assert member.unstable_for(130.0) == 30.0
        consumer._coordinator.state = MemberState.STABLE
        assert member.unstable_for(140.0) == 0.0
        consumer._coordinator.state = MemberState.UNJOINED
        assert member.unstable_for(150.0) == 0.0 and member.unstable_for(151.5) == 1.5  # a new spell
    finally:
        consumer.close(timeout_ms=500)
