#!/usr/bin/env python3
"""Gossip Glomers 6a in the style of Maelstrom's tutorial: one node keeps every key in a dict
and applies each `txn` to it whole, in the order the requests arrive (handlers run one at a
time), so every transaction is atomic and isolated. Speaks both micro-op vocabularies: `r` and
`w` (txn-rw-register) and `r` and `append` (txn-list-append). Standard library only."""

import copy

from node import Node

node = Node()
state: dict = {}


def apply(txn: list) -> list:
    done = []
    for f, k, v in txn:
        key = str(k)  # JSON object keys are strings: keep one spelling
        if f == "r":
            done.append([f, k, copy.copy(state.get(key))])
        elif f == "w":
            state[key] = v
            done.append([f, k, v])
        else:  # append
            state[key] = [*state.get(key, []), v]
            done.append([f, k, v])
    return done


node.on("txn", lambda m: node.reply(m, {"type": "txn_ok", "txn": apply(m["body"]["txn"])}))
node.run()
