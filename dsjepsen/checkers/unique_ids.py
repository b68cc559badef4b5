"""unique-ids: every id a node generated is unique (Maelstrom's unique-ids check).

Ops: `generate` (value = the id, on ok). Two ok generates returning the same id (compared as
canonical JSON, so 1 and "1" differ, as they do on the wire) are invalid, each duplicate named
with the ops and nodes that returned it. Availability (the share of generates that succeeded)
is reported here and gated by `dsjepsen maelstrom test --availability`.
"""

from __future__ import annotations

import json
from typing import Any

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.result import CheckResult
from dsjepsen.history import History

GENERATE = "generate"
MAX_ANOMALIES = 100


class UniqueIdsChecker(Checker):
    name = "unique-ids"
    needs = (frozenset({GENERATE}),)
    description = "every generated id is unique (Maelstrom's unique-ids)"

    def check(self, history: History, context: CheckContext) -> CheckResult:
        seen: dict[str, list[dict[str, Any]]] = {}
        counts = {"ok": 0, "fail": 0, "info": 0}
        for o in history.operations():
            if o.f != GENERATE:
                continue
            counts[o.type] = counts.get(o.type, 0) + 1
            if o.type != "ok":
                continue
            text = json.dumps(o.output, sort_keys=True)
            seen.setdefault(text, []).append(
                {"id": o.id, "node": o.invoke.node, "process": o.process}
            )
        dups = {k: v for k, v in seen.items() if len(v) > 1}
        anomalies = [
            {
                "type": "duplicate-id",
                "id": json.loads(k),
                "ops": v[:10],
                "message": f"id {k} was generated {len(v)} times, by "
                f"{', '.join(sorted({str(x['node']) for x in v}))}",
            }
            for k, v in list(dups.items())[:MAX_ANOMALIES]
        ]
        attempted = sum(counts.values())
        details = {
            "generated": counts["ok"],
            "attempted": attempted,
            "by_type": counts,
            "duplicated": len(dups),
            "availability": round(counts["ok"] / attempted, 4) if attempted else None,
        }
        if dups:
            return CheckResult(
                self.name,
                False,
                reason=f"{len(dups)} id(s) generated more than once",
                anomalies=anomalies,
                details=details,
            )
        return CheckResult(self.name, True, details=details)
