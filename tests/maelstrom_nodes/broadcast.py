"""Maelstrom broadcast node. Correct: every message is gossiped to the neighbours the topology
gives until each acknowledges it (retried every 200 ms, so partitions only delay it).
With --no-retry each message is sent to the neighbours once: under a partition it is lost."""

import sys
import threading

from node import Node

n = Node()
no_retry = "--no-retry" in sys.argv
seen: set = set()
neighbours: list = []
unacked: dict = {}  # (neighbour, message) -> True
lock = threading.Lock()


def topology(m):
    neighbours[:] = m["body"]["topology"].get(n.id, [])
    n.reply(m, {"type": "topology_ok"})


def spread(message, skip=None):
    for peer in list(neighbours) if neighbours else [x for x in n.ids if x != n.id]:
        if peer == skip:
            continue
        with lock:
            unacked[(peer, message)] = True
        send(peer, message)


def send(peer, message):
    def acked(_):
        with lock:
            unacked.pop((peer, message), None)

    n.rpc(peer, {"type": "gossip", "message": message}, acked)


def receive(message, src=None):
    with lock:
        new = message not in seen
        seen.add(message)
    if new:
        spread(message, skip=src)


def broadcast(m):
    receive(m["body"]["message"])
    n.reply(m, {"type": "broadcast_ok"})


def gossip(m):
    receive(m["body"]["message"], src=m["src"])
    n.reply(m, {"type": "gossip_ok"})


def read(m):
    with lock:
        n.reply(m, {"type": "read_ok", "messages": sorted(seen)})


def retry():
    if no_retry:
        return
    with lock:
        todo = list(unacked)
    for peer, message in todo:
        send(peer, message)


n.on("topology", topology)
n.on("broadcast", broadcast)
n.on("gossip", gossip)
n.on("read", read)
n.every(0.2, retry)
n.run()
