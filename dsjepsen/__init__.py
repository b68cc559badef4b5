"""dsjepsen: Jepsen-style correctness testing for distributed systems."""

__version__ = "0.1.0"
