"""Maelstrom unique-ids node: node id + local counter (correct). With --counter-only it
returns the bare counter, so two nodes hand out the same ids (buggy)."""

import itertools
import sys

from node import Node

n = Node()
count = itertools.count(1)
bare = "--counter-only" in sys.argv


def generate(m):
    c = next(count)
    n.reply(m, {"type": "generate_ok", "id": c if bare else f"{n.id}-{c}"})


n.on("generate", generate)
n.run()
