"""Maelstrom g-counter / pn-counter node by state gossip: each node keeps, per node, the sum
of positive and of negative deltas it took; every 100 ms it sends its whole state to every
peer, which merges by taking the maximum per node (correct, partitions only delay it).
With --double-count the merge adds the received state instead (buggy: counts twice)."""

import sys
import threading

from node import Node

n = Node()
double = "--double-count" in sys.argv
pos: dict = {}
neg: dict = {}
lock = threading.Lock()


def add(m):
    d = m["body"]["delta"]
    with lock:
        book = pos if d >= 0 else neg
        book[n.id] = book.get(n.id, 0) + abs(d)
    n.reply(m, {"type": "add_ok"})


def read(m):
    with lock:
        value = sum(pos.values()) - sum(neg.values())
    n.reply(m, {"type": "read_ok", "value": value})


def state(m):
    with lock:
        for mine, theirs in ((pos, m["body"]["pos"]), (neg, m["body"]["neg"])):
            for k, v in theirs.items():
                if k == n.id:
                    continue
                mine[k] = mine.get(k, 0) + v if double else max(mine.get(k, 0), v)


def gossip():
    with lock:
        body = {"type": "state", "pos": dict(pos), "neg": dict(neg)}
    for peer in n.ids:
        if peer != n.id:
            n.send(peer, body)


n.on("add", add)
n.on("read", read)
n.on("state", state)
n.every(0.1, gossip)
n.run()
