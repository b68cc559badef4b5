"""The lin-kv workload (Maelstrom's): read / write / cas on independent keys, linearizable
per key. The register workload under Maelstrom's name: same generator, same checker."""

from __future__ import annotations

from dsjepsen.workloads.register import RegisterWorkload


class LinKvWorkload(RegisterWorkload):
    name = "lin-kv"
    description = (
        "read / write / cas on independent keys, linearizable per key (Maelstrom's lin-kv; "
        "the register workload's ops)"
    )
