"""Remote control of nodes: one Remote per node, for local namespaces, SSH and docker."""
