"""The EDN exporter: round trips through our importer, and what Clojure (as Knossos' CLI reads
a history) makes of the file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dsjepsen import edn
from dsjepsen.formats import read_history
from dsjepsen.formats.edn import to_edn, write_edn
from dsjepsen.history import History, Op, write_jsonl

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "histories" / "porcupine"
CLOJURE = shutil.which("clojure")


def sample_history() -> History:
    """A dsjepsen-shaped history with every kind of field the runner writes."""
    nem_value = {
        "fault": "partition",
        "nodes": ["n1", "n2"],
        "description": 'cut n1, n2 off from n3 ("majority")',
        "grudge": {"n1": ["n3"], "n2": ["n3"]},
    }
    rows = [
        (0, "invoke", "write", "k1", 3, None, None),
        (1, "invoke", "read", "k2", None, None, None),
        ("nemesis", "invoke", "start-partition", None, "majority", None, None),
        (0, "ok", "write", "k1", 3, "n1", None),
        ("nemesis", "info", "start-partition", None, nem_value, None, None),
        (1, "ok", "read", "k2", None, "n2", None),
        (2, "invoke", "cas", "k1", [3, 4], None, None),
        (2, "fail", "cas", "k1", [3, 4], "n3", "precondition failed: 5 != 3"),
        (3, "invoke", "write", "k1", 5, None, None),
        (3, "info", "write", "k1", 5, "n1", "timeout after 2.0s"),
        (4, "invoke", "read", "k1", None, None, None),
        (4, "ok", "read", "k1", 5, "n4", None),
        (5, "invoke", "write", 'weird key \\ "q"', -1, None, None),
    ]
    ops = [
        Op(
            index=i,
            time=1_000_000 * i + 17,
            process=p,
            type=t,
            f=f,
            key=k,
            value=v,
            node=n,
            error=e,
        )
        for i, (p, t, f, k, v, n, e) in enumerate(rows)
    ]
    return History(ops, "<sample>")


def test_jsonl_to_edn_to_import_gives_the_same_ops(tmp_path: Path) -> None:
    h = sample_history()
    write_jsonl(h, tmp_path / "history.jsonl")
    from_jsonl = read_history(tmp_path / "history.jsonl")
    assert from_jsonl.ops == h.ops
    write_edn(from_jsonl, tmp_path / "history.edn", nemesis_as_info=False)
    back = read_history(tmp_path / "history.edn")
    assert back.ops == h.ops
    # One op per line: imported ops point at their line in the exported file.
    assert [o.line for o in back.ops] == list(range(1, len(h.ops) + 1))
    assert [(o.call, o.ret, o.output) for o in back.operations()] == [
        (o.call, o.ret, o.output) for o in h.operations()
    ]


def test_default_export_follows_jepsen_conventions_for_knossos(tmp_path: Path) -> None:
    h = sample_history()
    text = to_edn(h)
    forms = [v for _, v in edn.iter_forms(text, unwrap=True)]
    assert len(forms) == len(h.ops)
    first = forms[0]
    assert list(first) == ["index", "time", "type", "process", "f", "key", "value"]
    assert isinstance(first["type"], edn.Keyword) and isinstance(first["f"], edn.Keyword)
    # Nemesis ops are all :info, process :nemesis, like Jepsen's.
    nem = [m for m in forms if m["process"] == "nemesis"]
    assert nem and all(m["type"] == "info" for m in nem)
    assert all(isinstance(m["process"], edn.Keyword) for m in nem)
    p = tmp_path / "h.edn"
    p.write_text(text)
    back = read_history(p)
    # Client ops survive exactly; nemesis ops change only their type.
    assert [o for o in back.ops if o.process != "nemesis"] == h.client_ops()
    assert [(o.f, o.value) for o in back.nemesis_ops()] == [(o.f, o.value) for o in h.nemesis_ops()]
    assert back.operations() == h.operations()


def test_fail_completion_carries_its_invocation_value() -> None:
    ops = [
        Op(index=0, time=0, process=0, type="invoke", f="cas", value=[1, 2]),
        Op(index=1, time=1, process=0, type="fail", f="cas", value=None, error="absent"),
    ]
    forms = [v for _, v in edn.iter_forms(to_edn(ops), unwrap=True)]
    assert forms[1]["value"] == [1, 2] and forms[1]["error"] == "absent"


def test_per_key_export_keeps_that_key_and_unkeyed_ops() -> None:
    h = sample_history()
    forms = [v for _, v in edn.iter_forms(to_edn(h, key="k1"), unwrap=True)]
    assert {m.get("key") for m in forms} == {"k1", None}
    assert sum(1 for m in forms if m["process"] == "nemesis") == 2
    assert [m["index"] for m in forms if m.get("key") == "k1"] == [0, 3, 6, 7, 8, 9, 10, 11]
    assert to_edn([]) == "[]\n"


@pytest.mark.skipif(not (CORPUS / "EXPECTED.tsv").is_file(), reason=f"no corpus at {CORPUS}")
def test_corpus_round_trips_through_edn(tmp_path: Path) -> None:
    files = sorted(CORPUS.glob("jepsen/*.log")) + sorted(CORPUS.glob("kv/*.txt"))
    assert len(files) == 58
    for f in files:
        h = read_history(f)
        out = tmp_path / (f.stem + ".edn")
        write_edn(h, out)
        assert read_history(out).ops == h.ops, f.name


# A small check, in Clojure, of what Knossos needs from a history: read as knossos.cli does
# (clojure.edn forms; one outer collection is the history), keyword types from the four,
# integer or :nemesis processes, unique indices, a process never invoking while it has an op
# open (an info closes it), a fail completion equal in value to its invocation. It prints
# what it found, and the history as Clojure sees it, as EDN for the test to compare.
KNOSSOS_VIEW = r"""
(require '[clojure.edn :as edn] '[clojure.java.io :as io])
(import '(java.io PushbackReader))
(def h (let [forms (with-open [r (PushbackReader. (io/reader (first *command-line-args*)))]
                     (vec (take-while some? (repeatedly #(edn/read {:eof nil} r)))))]
         (if (and (= 1 (count forms)) (sequential? (first forms))) (vec (first forms)) forms)))
(def problems
  (loop [ops h, open {}, out []]
    (if-let [op (first ops)]
      (let [p (:process op)]
        (case (:type op)
          :invoke (recur (rest ops) (assoc open p op)
                         (if (contains? open p) (conj out [:double-invoke (:index op)]) out))
          :info (recur (rest ops) (dissoc open p) out)
          (:ok :fail) (let [inv (get open p)]
                        (recur (rest ops) (dissoc open p)
                               (cond (nil? inv) (conj out [:no-invoke (:index op)])
                                     (and (= :fail (:type op)) (not= (:value inv) (:value op)))
                                     (conj out [:fail-value (:index op)])
                                     :else out)))
          (recur (rest ops) open (conj out [:bad-type (:index op)]))))
      out)))
(prn {:count (count h)
      :types (set (map :type h))
      :processes-ok (every? #(or (integer? %) (= :nemesis %)) (map :process h))
      :unique-indices (apply distinct? (map :index h))
      :nemesis-types (set (map :type (filter #(= :nemesis (:process %)) h)))
      :problems problems})
(prn h)
"""


@pytest.mark.skipif(CLOJURE is None, reason="clojure is not installed (apt-get install clojure)")
def test_clojure_reads_the_export_as_knossos_would(tmp_path: Path) -> None:
    h = sample_history()
    p = tmp_path / "history.edn"
    write_edn(h, p)
    script = tmp_path / "knossos_view.clj"
    script.write_text(KNOSSOS_VIEW)
    proc = subprocess.run(
        [str(CLOJURE), str(script), str(p)], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    summary_text, history_text = proc.stdout.splitlines()[:2]
    summary = edn.loads(summary_text)
    assert summary["count"] == len(h.ops)
    assert summary["types"] == frozenset({"invoke", "ok", "fail", "info"})
    assert summary["processes-ok"] is True
    assert summary["unique-indices"] is True
    assert summary["nemesis-types"] == frozenset({"info"})
    assert summary["problems"] == []
    # Clojure's own printing of what it read is, op for op, what we exported.
    printed = tmp_path / "printed.edn"
    printed.write_text(history_text)
    assert read_history(printed).ops == read_history(p).ops
