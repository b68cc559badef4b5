#!/usr/bin/env python3
"""A transactional node in the style of Maelstrom's tutorial (doc/05-datomic, its first
design): the whole database is one JSON map kept in the `lin-kv` service under one key. A
transaction reads the map, applies its micro-ops to a copy, and installs the copy with a
compare-and-set from the map it read; when another node got there first the cas fails and
the transaction starts again from the new map. Every transaction thus takes effect at its
successful cas, inside its request: strict serializable. With `--abort` a conflict is
answered with error 30 (txn-conflict) instead, as the tutorial's node does: a definite
failure, nothing written. Speaks `r` / `w` and `r` / `append`. Standard library only."""

import sys
import threading

from node import Node

node = Node()
ROOT = "root"
abort_on_conflict = "--abort" in sys.argv


def apply(db: dict, txn: list) -> tuple[dict, list]:
    db = dict(db)
    done = []
    for f, k, v in txn:
        key = str(k)
        if f == "r":
            done.append([f, k, db.get(key)])
        elif f == "w":
            db[key] = v
            done.append([f, k, v])
        else:
            db[key] = [*db.get(key, []), v]
            done.append([f, k, v])
    return db, done


def transact(msg: dict) -> None:
    while True:
        got = node.sync_rpc("lin-kv", {"type": "read", "key": ROOT})
        if got is None:
            return  # no answer: the client times out and records it as indefinite
        body = got["body"]
        if body["type"] == "read_ok":
            db = body["value"]
        elif body.get("code") == 20:  # nothing stored yet
            db = {}
        else:
            node.reply(msg, {"type": "error", "code": 11, "text": f"read failed: {body}"})
            return
        new, done = apply(db, msg["body"]["txn"])
        if new == db:  # read-only: the map read was the state at that read
            node.reply(msg, {"type": "txn_ok", "txn": done})
            return
        cas = {"type": "cas", "key": ROOT, "from": db, "to": new, "create_if_not_exists": True}
        got = node.sync_rpc("lin-kv", cas)
        if got is None:
            return
        if got["body"]["type"] == "cas_ok":
            node.reply(msg, {"type": "txn_ok", "txn": done})
            return
        if got["body"].get("code") != 22:  # not a conflict: whether it was written is unknown
            node.reply(msg, {"type": "error", "code": 13, "text": f"cas: {got['body']}"})
            return
        if abort_on_conflict:
            node.reply(msg, {"type": "error", "code": 30, "text": "txn conflict"})
            return
        # someone else's transaction came first: start again from its result


node.on("txn", lambda m: threading.Thread(target=transact, args=(m,), daemon=True).start())
node.run()
