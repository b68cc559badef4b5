"""Maelstrom lin-kv node. Correct: proxies every request to the lin-kv service. With --local
each node answers from its own map (buggy: writes through one node are invisible through the
others)."""

import sys

from node import Node

n = Node()
local = "--local" in sys.argv
data: dict = {}


def handle(m):
    body = m["body"]
    if local:
        k = str(body["key"])
        if body["type"] == "read":
            if k in data:
                n.reply(m, {"type": "read_ok", "value": data[k]})
            else:
                n.reply(m, {"type": "error", "code": 20, "text": "not found"})
        elif body["type"] == "write":
            data[k] = body["value"]
            n.reply(m, {"type": "write_ok"})
        elif k not in data:
            n.reply(m, {"type": "error", "code": 20, "text": "not found"})
        elif data[k] != body["from"]:
            n.reply(m, {"type": "error", "code": 22, "text": "mismatch"})
        else:
            data[k] = body["to"]
            n.reply(m, {"type": "cas_ok"})
        return
    request = {k: v for k, v in body.items() if k != "msg_id"}

    def answer(r):
        out = {k: v for k, v in r["body"].items() if k not in ("msg_id", "in_reply_to")}
        n.reply(m, out)

    n.rpc("lin-kv", request, answer)


for kind in ("read", "write", "cas"):
    n.on(kind, handle)
n.run()
