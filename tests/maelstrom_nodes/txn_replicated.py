#!/usr/bin/env python3
"""Gossip Glomers 6b / 6c, a totally available design as students write it: each node applies
a `txn` to its own map at once (handlers run one at a time, so atomically) and answers; the
transaction's final writes (one value per key) are queued for every peer, and every 100 ms
each peer is sent what it has not acknowledged yet; a peer applies each transaction's writes
whole, once, in the order they arrive (a hundred a message at most). Partitions only delay
the queue. Read committed: no
reader ever sees a write before its transaction committed, nor one it overwrote.

Broken variants (node arguments):
  --per-write  replicate every write micro-op on its own as the transaction runs, 20 ms
               apart, intermediate writes included, never retried (a 6b design): a peer's
               transactions see a transaction's intermediate writes (G1b)
  --abort      answer one transaction in ten that wrote something with error 30
               (txn-conflict) without undoing or holding back its writes: others read
               what an aborted transaction wrote (G1a)
Standard library only."""

import random
import sys
import threading

from node import Node

node = Node()
per_write = "--per-write" in sys.argv
abort = "--abort" in sys.argv
state: dict = {}
lock = threading.Lock()
seq = 0
#: peer -> {entry id: writes} not acknowledged yet
unacked: dict = {}
applied: set = set()
#: transactions per replicate message
BATCH = 100


def apply(txn: list) -> tuple[list, dict, list]:
    """Run a transaction on the local map: (completed micro-ops, final writes, every write)."""
    done, final, every = [], {}, []
    for f, k, v in txn:
        key = str(k)
        if f == "r":
            done.append([f, k, state.get(key)])
        else:
            state[key] = v
            final[key] = v
            every.append((key, v))
            done.append([f, k, v])
    return done, final, every


def on_txn(msg: dict) -> None:
    global seq
    with lock:
        done, final, every = apply(msg["body"]["txn"])
        if final and not per_write:
            seq += 1
            for peer in node.ids:
                if peer != node.id:
                    unacked.setdefault(peer, {})[f"{node.id}-{seq}"] = final
    if per_write:
        for i, (key, v) in enumerate(every):
            threading.Timer(0.02 * (i + 1), send_write, args=(key, v)).start()
    if abort and final and random.random() < 0.1:
        node.reply(msg, {"type": "error", "code": 30, "text": "txn conflict"})
        return
    node.reply(msg, {"type": "txn_ok", "txn": done})


def send_write(key: str, v) -> None:
    for peer in node.ids:
        if peer != node.id:
            node.send(peer, {"type": "write_one", "key": key, "value": v})


def on_write_one(msg: dict) -> None:
    with lock:
        state[msg["body"]["key"]] = msg["body"]["value"]


def on_replicate(msg: dict) -> None:
    with lock:
        for entry_id, writes in msg["body"]["entries"]:
            if entry_id not in applied:
                applied.add(entry_id)
                state.update(writes)
    node.reply(msg, {"type": "replicate_ok", "ids": [e for e, _ in msg["body"]["entries"]]})


def gossip() -> None:
    for peer in list(node.ids):
        with lock:  # at most BATCH a message: a message must fit in one datagram
            entries = list(unacked.get(peer, {}).items())[:BATCH]
        if entries:
            node.rpc(peer, {"type": "replicate", "entries": entries}, acked(peer))


def acked(peer: str):
    def got(msg: dict) -> None:
        with lock:
            for entry_id in msg["body"].get("ids", []):
                unacked.get(peer, {}).pop(entry_id, None)

    return got


node.on("txn", on_txn)
node.on("replicate", on_replicate)
node.on("write_one", on_write_one)
node.every(0.1, gossip)
node.run()
