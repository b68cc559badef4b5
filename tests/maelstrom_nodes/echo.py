"""A correct Maelstrom echo node."""

from node import Node

n = Node()
n.on("echo", lambda m: n.reply(m, {"type": "echo_ok", "echo": m["body"]["echo"]}))
n.run()
