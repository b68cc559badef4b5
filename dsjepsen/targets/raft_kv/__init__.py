"""The reference raft-kv store: a Raft key-value server plus its dsjepsen target.

The server modules (server, node, storage, httpio, kv) use the Python standard library only and
import nothing from dsjepsen but the shared, equally standard-library-only serverkit (through
httpio), so this directory, with serverkit.py beside it, can be copied to a node that has
nothing but python3 >= 3.11 and run there as `python3 -m raft_kv.server`. Only `target.py`
belongs to the harness side (its client is the HTTP contract's, `targets/contract_client.py`);
keep this file free of imports so that uploading stays possible.
"""
