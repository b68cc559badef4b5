#!/usr/bin/env python3
# An echo node written the way Maelstrom's tutorial writes its echo.rb: one self-contained,
# executable script, run as `--bin echo_tutorial.py` from its own directory (a bare file name,
# which Maelstrom resolves against the directory it runs in).
import json
import sys

node_id = None
next_id = 0

for line in sys.stdin:
    req = json.loads(line)
    body = req["body"]
    next_id += 1
    if body["type"] == "init":
        node_id = body["node_id"]
        print(f"Initialized node {node_id}", file=sys.stderr, flush=True)
        reply = {"type": "init_ok"}
    elif body["type"] == "echo":
        print(f"Echoing {body}", file=sys.stderr, flush=True)
        reply = {"type": "echo_ok", "echo": body["echo"]}
    else:
        continue
    reply.update(msg_id=next_id, in_reply_to=body["msg_id"])
    print(json.dumps({"src": node_id, "dest": req["src"], "body": reply}), flush=True)
