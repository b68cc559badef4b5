"""How many clients share one node's final reads: one for a few keys, up to FINAL_READERS for
a long run's thousands, and always one for a workload whose follow-ups need one client's view
of the node (Kafka's polls)."""

from __future__ import annotations

from dsjepsen.harness.phases import FINAL_READERS, FINAL_READS_PER_READER, _readers_per_node
from dsjepsen.workloads.kafka import KafkaWorkload
from dsjepsen.workloads.register import RegisterWorkload


def test_many_keys_share_the_reads_few_do_not() -> None:
    wl = RegisterWorkload(seed=1, keys=5, ops_per_key=60)
    assert _readers_per_node(wl, 10) == 1
    assert _readers_per_node(wl, 2 * FINAL_READS_PER_READER - 1) == 1
    assert _readers_per_node(wl, 2 * FINAL_READS_PER_READER) == 2
    assert _readers_per_node(wl, 10_000) == FINAL_READERS


def test_a_workload_with_follow_ups_keeps_one_reader() -> None:
    assert _readers_per_node(KafkaWorkload(seed=1), 10_000) == 1
    assert _readers_per_node(None, 10_000) == 1
