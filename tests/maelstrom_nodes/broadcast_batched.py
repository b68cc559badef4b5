#!/usr/bin/env python3
# A broadcast node in the style of a Gossip Glomers 3d/3e solution: it ignores the topology
# Maelstrom offers and builds its own star (the first node id is the hub), and gossips in
# batches: every BATCH seconds each node sends each peer, in one message, the messages that
# peer has not acknowledged yet. Few messages per op, bounded latency (two hops), and
# partitions only delay it (unacknowledged messages go again in the next batch).
import json
import sys
import threading
import time

BATCH = float(sys.argv[1]) if len(sys.argv) > 1 else 0.1

lock = threading.Lock()
node_id = None
peers = []  # whom this node gossips to
messages = set()
unacked = {}  # peer -> set of messages it has not acknowledged
in_flight = {}  # msg_id of a gossip -> (peer, messages in it)
next_id = 0


def send(dest, body):
    line = json.dumps({"src": node_id, "dest": dest, "body": body})
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def learn(new, source):
    """Add messages; queue the new ones for every peer but the one they came from."""
    with lock:
        fresh = [m for m in new if m not in messages]
        messages.update(fresh)
        for peer in peers:
            if peer != source and fresh:
                unacked[peer].update(fresh)


def gossip_loop():
    global next_id
    while True:
        time.sleep(BATCH)
        batches = []
        with lock:
            for peer in peers:
                if unacked[peer]:
                    next_id += 1
                    batch = sorted(unacked[peer])
                    in_flight[next_id] = (peer, batch)
                    batches.append((peer, next_id, batch))
            # a batch never acknowledged is simply sent again with the next one
            while len(in_flight) > 10000:
                in_flight.pop(next(iter(in_flight)))
        for peer, msg_id, batch in batches:
            send(peer, {"type": "gossip", "msg_id": msg_id, "messages": batch})


for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    kind = body["type"]
    if kind == "init":
        node_id = body["node_id"]
        ids = body["node_ids"]
        hub = ids[0]
        peers = [n for n in ids if n != node_id] if node_id == hub else [hub]
        unacked = {p: set() for p in peers}
        threading.Thread(target=gossip_loop, daemon=True).start()
        send(msg["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
    elif kind == "topology":  # offered, and ignored: this node keeps its own star
        send(msg["src"], {"type": "topology_ok", "in_reply_to": body["msg_id"]})
    elif kind == "broadcast":
        learn([body["message"]], None)
        send(msg["src"], {"type": "broadcast_ok", "in_reply_to": body["msg_id"]})
    elif kind == "gossip":
        learn(body["messages"], msg["src"])
        send(msg["src"], {"type": "gossip_ok", "in_reply_to": body["msg_id"]})
    elif kind == "gossip_ok":
        with lock:
            peer, batch = in_flight.pop(body["in_reply_to"], (None, ()))
            if peer is not None:
                unacked[peer].difference_update(batch)
    elif kind == "read":
        with lock:
            seen = list(messages)
        send(msg["src"], {"type": "read_ok", "messages": seen, "in_reply_to": body["msg_id"]})
