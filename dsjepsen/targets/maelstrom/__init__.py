"""The maelstrom target: any Maelstrom-protocol node program, run as a black box on a real
cluster, with a relay beside each node that carries its messages over real sockets
(docs/maelstrom.md)."""
