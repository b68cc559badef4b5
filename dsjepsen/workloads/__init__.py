"""Workloads: a client op generator, final reads, and the checkers that judge the history."""
