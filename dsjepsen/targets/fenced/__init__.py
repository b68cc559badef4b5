"""The fenced resource: a small store the harness runs on a node for the lock workload, which
records every guarded write a lock holder sends it and, with fencing on, rejects a fencing
token older than the newest it has accepted (Kleppmann's fenced storage service).

Standard library only, like the reference servers: it is uploaded to nodes that have nothing
but python3 (`resource.py`, which starts it, stays on the controller).
"""
