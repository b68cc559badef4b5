#!/usr/bin/env python3
"""A transactional node in the style of Maelstrom's tutorial (doc/05-datomic): the whole
database is one JSON map kept in a key-value service under one key. A transaction reads the
map, applies its micro-ops to a copy, and installs the copy with a compare-and-set from the
map it read; when another node got there first the cas fails and the transaction starts again
from the new map. With the map in `lin-kv` every transaction takes effect at its successful cas
(or, read-only, at its read), inside its request: strict serializable.

Node arguments, the tutorial's variants:
  --abort       answer a conflict with error 30 (txn-conflict), as the tutorial's node does,
                instead of retrying: a definite failure, nothing written
  --thunks      keep each key's value as an immutable "thunk" in `lww-kv` under a fresh id, the
                map holding only the ids (the tutorial's next step); lww-kv may not have a
                thunk yet on the replica asked, so a read of one is retried until it is there
  --root seq-kv keep the map in `seq-kv`: a read may return an older map, so read-only
                transactions can see the past (serializable, not strict serializable); a cas
                always compares with the newest map, so updates stay serializable
Speaks `r` / `w` and `r` / `append`. Standard library only."""

import sys
import threading
import time

from node import Node

node = Node()
ROOT = "root"
abort_on_conflict = "--abort" in sys.argv
thunks = "--thunks" in sys.argv
root_service = sys.argv[sys.argv.index("--root") + 1] if "--root" in sys.argv else "lin-kv"
#: thunk id -> value: thunks never change, so any copy once read stays right
cache: dict = {}
counter = [0]
lock = threading.Lock()


class Unanswered(Exception):
    """A service did not answer: whether the transaction happened is unknown."""


def call(service: str, body: dict) -> dict:
    got = node.sync_rpc(service, body)
    if got is None:
        raise Unanswered(service)
    return got["body"]


def fetch(thunk_id: str):
    if thunk_id in cache:
        return cache[thunk_id]
    for _ in range(200):  # lww-kv's replicas catch up within a second
        body = call("lww-kv", {"type": "read", "key": thunk_id})
        if body["type"] == "read_ok":
            cache[thunk_id] = body["value"]
            return body["value"]
        time.sleep(0.01)
    raise Unanswered(f"thunk {thunk_id} never appeared")


def store(value) -> str:
    with lock:
        counter[0] += 1
        thunk_id = f"{node.id}-{counter[0]}"
    body = call("lww-kv", {"type": "write", "key": thunk_id, "value": value})
    if body["type"] != "write_ok":
        raise Unanswered(f"lww-kv write: {body}")
    cache[thunk_id] = value
    return thunk_id


def apply(db: dict, txn: list) -> tuple[dict, list]:
    values: dict = {}

    def current(key: str):
        if key not in values:
            stored = db.get(key)
            values[key] = fetch(stored) if thunks and stored is not None else stored
        return values[key]

    done, written = [], set()
    for f, k, v in txn:
        key = str(k)
        if f == "r":
            done.append([f, k, current(key)])
        else:
            values[key] = v if f == "w" else [*(current(key) or []), v]
            written.add(key)
            done.append([f, k, v])
    new = dict(db)
    for key in written:
        new[key] = store(values[key]) if thunks else values[key]
    return new, done


def transact(msg: dict) -> None:
    try:
        while True:
            body = call(root_service, {"type": "read", "key": ROOT})
            if body["type"] == "read_ok":
                db = body["value"]
            elif body.get("code") == 20:  # nothing stored yet
                db = {}
            else:
                raise Unanswered(f"read: {body}")
            new, done = apply(db, msg["body"]["txn"])
            if new == db:  # read-only: the map read was the state at that read
                node.reply(msg, {"type": "txn_ok", "txn": done})
                return
            cas = {"type": "cas", "key": ROOT, "from": db, "to": new, "create_if_not_exists": True}
            body = call(root_service, cas)
            if body["type"] == "cas_ok":
                node.reply(msg, {"type": "txn_ok", "txn": done})
                return
            if body.get("code") != 22:  # not a conflict: whether it was written is unknown
                raise Unanswered(f"cas: {body}")
            if abort_on_conflict:
                node.reply(msg, {"type": "error", "code": 30, "text": "txn conflict"})
                return
            # someone else's transaction came first: start again from its result
    except Unanswered as e:
        node.reply(msg, {"type": "error", "code": 13, "text": f"no answer from {e}"})


node.on("txn", lambda m: threading.Thread(target=transact, args=(m,), daemon=True).start())
node.run()
