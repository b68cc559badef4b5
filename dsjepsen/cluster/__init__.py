"""The floor of the house: reaching nodes and nothing else.

Remote backends (local network namespaces, SSH, docker exec), the local namespace cluster,
daemon helpers built once over Remote, node selection from options, and healing what a crashed
run left behind. This is the only package that knows what kind a node is; targets and fault
packages stand on it and see a `Cluster` of named nodes with one `Remote` each.
"""
