"""The reference crdt-kv store: state-based G-Sets and PN-Counters with gossip, plus its target.

The server modules (server, replica, crdt, storage, httpio, bugs) use the Python standard
library only and import nothing from dsjepsen but the shared, equally standard-library-only
serverkit (through httpio), so this directory, with serverkit.py beside it, can be copied to a
node that has nothing but python3 >= 3.11 and run there as `python3 -m crdt_kv.server`. Only
`target.py` belongs to the harness side; keep this file free of imports so that uploading stays
possible.
"""
