"""Fault injection: partitions, process faults, clocks, packet faults, and their schedule."""
