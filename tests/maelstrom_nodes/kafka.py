#!/usr/bin/env python3
# A Kafka-style log node in the style of a Gossip Glomers 5a/5b solution: every key has an
# owner node (a hash of the key); a node handles the keys it owns (offsets 0, 1, 2, ... per
# key, committed offsets per key) and forwards requests for other keys to their owner,
# answering its client when the owner answers. One thread, an event loop over stdin.
#
# --local-offsets: the classic 5b mistake: every node keeps its own logs and numbers offsets
# itself, never forwarding, so two nodes give the same offset of a key to different messages
# and a poll through one node never sees what was sent through the other.
import json
import sys
import zlib

LOCAL = "--local-offsets" in sys.argv

node_id = None
node_ids = []
logs = {}  # key -> list of messages (offset = position)
committed = {}  # key -> offset
next_id = 0
waiting = {}  # msg_id of a forwarded request -> the client request to answer


def send(dest, body):
    sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
    sys.stdout.flush()


def reply(req, body):
    body["in_reply_to"] = req["body"]["msg_id"]
    send(req["src"], body)


def owner(key):
    return node_ids[zlib.crc32(key.encode()) % len(node_ids)]


def forward(req, dest, body):
    """Ask `dest` to handle `body`; answer `req` with what it says."""
    global next_id
    next_id += 1
    waiting[next_id] = req
    send(dest, {**body, "msg_id": next_id})


def handle_send(req):
    key, msg = req["body"]["key"], req["body"]["msg"]
    if not LOCAL and owner(key) != node_id:
        return forward(req, owner(key), {"type": "send", "key": key, "msg": msg})
    log = logs.setdefault(key, [])
    log.append(msg)
    reply(req, {"type": "send_ok", "offset": len(log) - 1})


def split(keys):
    """Keys by the node that owns them (all here with --local-offsets)."""
    out = {}
    for k in keys:
        out.setdefault(node_id if LOCAL else owner(k), []).append(k)
    return out


def handle_poll(req):
    offsets = req["body"]["offsets"]
    mine = split(offsets)
    if len(mine) > 1 or (mine and node_id not in mine):
        # keys owned elsewhere: ask each owner, merge the answers (see gather)
        parts = {"req": req, "left": len(mine), "msgs": {}, "kind": "poll"}
        for dest, keys in mine.items():
            sub = {k: offsets[k] for k in keys}
            if dest == node_id:
                parts["msgs"].update(local_poll(sub))
                parts["left"] -= 1
            else:
                forward(parts, dest, {"type": "poll", "offsets": sub})
        return finish(parts)
    reply(req, {"type": "poll_ok", "msgs": local_poll(offsets)})


def local_poll(offsets):
    return {
        k: [[o, logs[k][o]] for o in range(max(0, start), len(logs.get(k, [])))]
        for k, start in offsets.items()
        if k in logs
    }


def handle_commit(req):
    offsets = req["body"]["offsets"]
    mine = split(offsets)
    parts = {"req": req, "left": len(mine), "msgs": {}, "kind": "commit"}
    for dest, keys in mine.items():
        if dest == node_id:
            for k in keys:
                committed[k] = max(committed.get(k, -1), offsets[k])
            parts["left"] -= 1
        else:
            forward(
                parts, dest, {"type": "commit_offsets", "offsets": {k: offsets[k] for k in keys}}
            )
    finish(parts)


def handle_list(req):
    keys = req["body"]["keys"]
    mine = split(keys)
    parts = {"req": req, "left": len(mine), "msgs": {}, "kind": "list"}
    for dest, ks in mine.items():
        if dest == node_id:
            parts["msgs"].update({k: committed[k] for k in ks if k in committed})
            parts["left"] -= 1
        else:
            forward(parts, dest, {"type": "list_committed_offsets", "keys": ks})
    finish(parts)


def finish(parts):
    if parts["left"] > 0:
        return
    req, msgs = parts["req"], parts["msgs"]
    if parts["kind"] == "poll":
        reply(req, {"type": "poll_ok", "msgs": msgs})
    elif parts["kind"] == "commit":
        reply(req, {"type": "commit_offsets_ok"})
    else:
        reply(req, {"type": "list_committed_offsets_ok", "offsets": msgs})


def on_reply(msg):
    pending = waiting.pop(msg["body"]["in_reply_to"], None)
    if pending is None:
        return
    body = msg["body"]
    if "req" not in pending:  # a forwarded send: pass the owner's answer on
        answer = {k: v for k, v in body.items() if k not in ("msg_id", "in_reply_to")}
        return reply(pending, answer)
    if body["type"] == "error":
        pending["left"] = -1  # answered once, with the error
        return reply(pending["req"], {k: v for k, v in body.items() if k != "in_reply_to"})
    if pending["left"] < 0:
        return
    pending["msgs"].update(body.get("msgs") or body.get("offsets") or {})
    pending["left"] -= 1
    finish(pending)


HANDLERS = {
    "send": handle_send,
    "poll": handle_poll,
    "commit_offsets": handle_commit,
    "list_committed_offsets": handle_list,
}

for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    if body["type"] == "init":
        node_id, node_ids = body["node_id"], body["node_ids"]
        reply(msg, {"type": "init_ok"})
    elif "in_reply_to" in body:
        on_reply(msg)
    elif body["type"] in HANDLERS:
        HANDLERS[body["type"]](msg)
