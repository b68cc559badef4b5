"""dsjepsen: Jepsen-style correctness testing for distributed systems.

`from dsjepsen import check, read_history, run_test, test_config` gives the Python API
(dsjepsen.api); the names load on first use, so `import dsjepsen` stays cheap and pulls in
no harness, checker or report code.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: the public API, re-exported lazily from dsjepsen.api
__all__ = ["TestRun", "check", "read_history", "run_test", "test_config", "to_history"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("dsjepsen.api"), name)
    raise AttributeError(f"module 'dsjepsen' has no attribute {name!r}")
