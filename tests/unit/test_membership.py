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


def test_the_coordinator_silence_counts_from_its_last_answer_not_from_the_client_being_built() -> None:
    """GroupMember.coordinator_silence on a real (unconnected) KafkaConsumer whose heartbeat bookkeeping is set by
    hand as kafka-python's network thread sets it (heartbeat answered, coordinator found)."""
    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:1", group_id="g", api_version=(2, 8),
                             request_timeout_ms=1000, connections_max_idle_ms=2000, session_timeout_ms=6000)
    try:
        member = GroupMember(consumer, "t")
        built = member._built_at
        assert member.session_timeout_s() == 6.0
        heartbeat = consumer._coordinator.heartbeat
        # built, nothing answered yet (its last_reset is the construction, not an answer)
        assert member.coordinator_silence(built + 5.0) == (5.0, False)
        heartbeat.last_reset = built + 1.0  # the coordinator was found
        assert member.coordinator_silence(built + 5.0) == (4.0, True)
        heartbeat.last_receive = built + 3.0  # a heartbeat answered
        assert member.coordinator_silence(built + 5.0) == (2.0, True)
        assert member.coordinator_silence(built + 40.0) == (37.0, True)  # then nothing: a black hole
    finally:
        consumer.close(timeout_ms=500)
