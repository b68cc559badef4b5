"""An echo node that also prints garbage: a line that is not JSON, a message without dest,
a reply to a msg_id nobody sent, a message to an unknown node (each once, after init)."""

import json
import sys

from node import Node

n = Node()
said = False


def echo(m):
    global said
    if not said:
        said = True
        with n.lock:
            print("hello, this is not JSON", flush=True)
            print(json.dumps({"src": n.id, "body": {"type": "echo_ok"}}), flush=True)
            print(
                json.dumps(
                    {
                        "src": n.id,
                        "dest": m["src"],
                        "body": {"type": "echo_ok", "in_reply_to": 987654321},
                    }
                ),
                flush=True,
            )
            print(json.dumps({"src": n.id, "dest": "n99", "body": {"type": "x"}}), flush=True)
    n.reply(m, {"type": "echo_ok", "echo": m["body"]["echo"]})


n.on("echo", echo)
sys.exit(n.run())
