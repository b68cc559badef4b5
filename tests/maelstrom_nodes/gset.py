"""Maelstrom g-set node: local set, whole set gossiped to every peer every 100 ms, union on
receipt (correct)."""

import threading

from node import Node

n = Node()
elements: set = set()
lock = threading.Lock()


def add(m):
    with lock:
        elements.add(m["body"]["element"])
    n.reply(m, {"type": "add_ok"})


def read(m):
    with lock:
        n.reply(m, {"type": "read_ok", "value": sorted(elements)})


def merge(m):
    with lock:
        elements.update(m["body"]["value"])


def gossip():
    with lock:
        body = {"type": "merge", "value": sorted(elements)}
    for peer in n.ids:
        if peer != n.id:
            n.send(peer, body)


n.on("add", add)
n.on("read", read)
n.on("merge", merge)
n.every(0.1, gossip)
n.run()
