"""A small EDN reader and writer, enough for Jepsen and Knossos histories.

Jepsen stores histories as EDN (Clojure data), so reading them, and writing histories Knossos
can re-check, needs EDN both ways. The reader is a regex tokenizer feeding an explicit stack
(no recursion, so a deeply nested value cannot blow the Python stack) because histories run to
hundreds of thousands of maps and the parse must stay a small fraction of the check.

Python shapes: nil/true/false -> None/True/False, integers (also `42N`) -> int, decimals -> float,
strings -> str, keywords -> `Keyword` and symbols -> `Symbol` (both `str` subclasses, so they
compare equal to their name without the colon), vectors and lists -> list, maps -> dict, sets ->
frozenset, characters -> str, a tagged literal `#tag value` -> `Tagged`. A vector used as a map
key or set element becomes a tuple (lists are not hashable).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class Keyword(str):
    """An EDN keyword; `Keyword("invoke") == "invoke"`, written back as `:invoke`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Keyword({str.__repr__(self)})"


class Symbol(str):
    """An EDN symbol, written back bare."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Symbol({str.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class Tagged:
    """A tagged literal such as `#inst "..."` or a Clojure record `#ns.Rec{...}`."""

    tag: str
    value: Any


class EdnError(ValueError):
    """Malformed EDN, with the 1-based line where the problem was found."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.reason = message
        self.line = line


_DELIMS = r"\s,\[\](){}\"#;"
_TOKEN = re.compile(
    r"""
    (?P<ws>[\s,]+|;[^\n]*)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<open>\#\{|[\[({])
  | (?P<close>[\])}])
  | (?P<disc>\#_)
  | (?P<special>\#\#[A-Za-z-]+)
  | (?P<nsmap>\#:[^"""
    + _DELIMS
    + r"""]+(?=\{))
  | (?P<tag>\#[A-Za-z][^"""
    + _DELIMS
    + r"""]*)
  | (?P<char>\\(?:newline|space|tab|return|formfeed|backspace|u[0-9a-fA-F]{4}|.))
  | (?P<atom>[^"""
    + _DELIMS
    + r"""\\][^"""
    + _DELIMS
    + r"""]*)
  | (?P<bad>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_INT = re.compile(r"[+-]?\d+N?")
_FLOAT = re.compile(r"[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?M?")
_RATIO = re.compile(r"[+-]?\d+/\d+")
_CHARS = {
    "newline": "\n",
    "space": " ",
    "tab": "\t",
    "return": "\r",
    "formfeed": "\f",
    "backspace": "\b",
}
_STR_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_SPECIAL = {"##Inf": math.inf, "##-Inf": -math.inf, "##NaN": math.nan}
_CONST = {"nil": None, "true": True, "false": False}
_CLOSER = {"[": "]", "(": ")", "{": "}", "#{": "}"}


def _unescape(m: re.Match[str]) -> str:
    e = m.group(1)
    if e[0] == "u" and len(e) == 5:
        return chr(int(e[1:], 16))
    try:
        return _STR_ESCAPES[e]
    except KeyError:
        raise ValueError(f"unknown string escape \\{e}") from None


def _atom(text: str) -> Any:
    c = text[0]
    if c == ":":
        if len(text) == 1:
            raise ValueError("empty keyword ':'")
        return Keyword(text[2:] if text[1] == ":" else text[1:])
    if c.isdigit() or (c in "+-" and len(text) > 1 and text[1].isdigit()):
        if _INT.fullmatch(text):
            return int(text.rstrip("N"))
        if _FLOAT.fullmatch(text):
            return float(text.rstrip("M"))
        if _RATIO.fullmatch(text):
            num, den = text.split("/")
            return int(num) / int(den)
        raise ValueError(f"invalid number {text!r}")
    if text in _CONST:
        return _CONST[text]
    return Symbol(text)


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted(((_hashable(k), _hashable(x)) for k, x in v.items()), key=repr))
    return v


class _Frame:
    __slots__ = ("kind", "items", "line", "tag")

    def __init__(self, kind: str, line: int, tag: str | None = None):
        self.kind = kind  # "[", "(", "{", "#{", "tag", "disc", or "nsmap:<ns>"
        self.items: list[Any] = []
        self.line = line
        self.tag = tag


def _finish(frame: _Frame) -> Any:
    kind, items = frame.kind, frame.items
    if kind in ("[", "("):
        return items
    if kind == "{" or kind.startswith("nsmap:"):
        if len(items) % 2:
            raise EdnError("map literal has an odd number of forms", frame.line)
        it = iter(items)
        out: dict[Any, Any] = {}
        ns = kind[6:] if kind.startswith("nsmap:") else None
        for k in it:
            v = next(it)
            if ns is not None and isinstance(k, Keyword) and "/" not in k:
                k = Keyword(f"{ns}/{k}")
            try:
                out[k] = v
            except TypeError:
                out[_hashable(k)] = v
        return out
    # "#{"
    return frozenset(_hashable(x) for x in items)


def iter_forms(text: str, *, unwrap: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield (line, value) for each top-level form of `text`.

    With `unwrap`, a text that starts with a vector or list yields that collection's elements
    instead, each with its own starting line; this is how a history.edn written as one vector
    still gets a line number per op.
    """
    for line, value, _ in _scan(text, unwrap):
        yield line, value


def _scan(text: str, unwrap: bool) -> Iterator[tuple[int, Any, int]]:
    stack: list[_Frame] = []
    line = 1
    counted = 0  # text[:counted] has been scanned for newlines
    seen_top = False
    match = _TOKEN.match
    count = text.count
    pos = 0
    end = len(text)
    while pos < end:
        m = match(text, pos)
        assert m is not None  # the `bad` alternative matches any character
        kind = m.lastgroup
        start = pos
        pos = m.end()
        if kind == "ws":
            continue
        line += count("\n", counted, start)
        counted = start
        value: Any
        if kind == "atom":
            try:
                value = _atom(m.group())
            except ValueError as e:
                raise EdnError(str(e), line) from None
        elif kind == "str":
            s = m.group()[1:-1]
            if "\\" in s:
                try:
                    s = _ESCAPE.sub(_unescape, s)
                except ValueError as e:
                    raise EdnError(str(e), line) from None
            value = s
        elif kind == "open":
            tok = m.group()
            if unwrap and not stack and not seen_top and tok in ("[", "("):
                # Remember that we are inside the outer collection; its elements are
                # emitted one by one as top-level forms.
                seen_top = True
                stack.append(_Frame("outer", line))
                continue
            stack.append(_Frame(tok, line))
            continue
        elif kind == "close":
            if not stack or stack[-1].kind in ("tag", "disc"):
                raise EdnError(f"unexpected {m.group()!r}", line)
            frame = stack.pop()
            if frame.kind == "outer":
                if m.group() not in ("]", ")"):
                    raise EdnError(f"unexpected {m.group()!r}", line)
                continue
            expected = "}" if frame.kind.startswith("nsmap:") else _CLOSER[frame.kind]
            if m.group() != expected:
                raise EdnError(
                    f"expected {expected!r} to close {frame.kind!r} from line {frame.line}, "
                    f"found {m.group()!r}",
                    line,
                )
            value = _finish(frame)
            line_of = frame.line
        elif kind == "tag":
            stack.append(_Frame("tag", line, m.group()[1:]))
            continue
        elif kind == "disc":
            stack.append(_Frame("disc", line))
            continue
        elif kind == "nsmap":
            # `#:ns{...}` namespaced map: the `{` follows immediately.
            nxt = match(text, pos)
            assert nxt is not None
            pos = nxt.end()
            stack.append(_Frame("nsmap:" + m.group()[2:], line))
            continue
        elif kind == "char":
            c = m.group()[1:]
            if len(c) == 1:
                value = c
            elif c in _CHARS:
                value = _CHARS[c]
            else:
                value = chr(int(c[1:], 16))
        elif kind == "special":
            if m.group() not in _SPECIAL:
                raise EdnError(f"unknown symbolic value {m.group()!r}", line)
            value = _SPECIAL[m.group()]
        elif m.group() == '"':
            raise EdnError("unterminated string", line)
        else:
            raise EdnError(f"unexpected character {m.group()!r}", line)
        if kind != "close":
            line_of = line
        # Deliver the finished value to whatever encloses it.
        while True:
            if not stack or stack[-1].kind == "outer":
                seen_top = True
                yield line_of, value, pos
                break
            top = stack[-1]
            if top.kind == "tag":
                stack.pop()
                value = Tagged(top.tag or "", value)
                line_of = top.line
                continue
            if top.kind == "disc":
                stack.pop()
                value = _DISCARDED
                break
            top.items.append(value)
            break
        if value is _DISCARDED:
            continue
    if stack:
        frame = stack[-1]
        what = "the outer collection" if frame.kind == "outer" else repr(frame.kind)
        raise EdnError(f"end of input inside {what} opened on line {frame.line}", frame.line)


_DISCARDED = object()


def loads(text: str) -> Any:
    """Parse exactly one EDN value."""
    forms = list(iter_forms(text))
    if len(forms) != 1:
        raise EdnError(f"expected one EDN value, found {len(forms)}", forms[1][0] if forms else 1)
    return forms[0][1]


def read_prefix(text: str) -> tuple[Any, str]:
    """Parse the first EDN value of `text`; return it and the unparsed rest (stripped)."""
    for _, value, end in _scan(text, False):
        return value, text[end:].strip()
    raise EdnError("no EDN value", 1)


def to_plain(v: Any) -> Any:
    """Turn EDN shapes into JSON-like Python: keywords and symbols into plain strings, sets
    into sorted lists, tuples into lists, and tagged literals into their value."""
    if v is None or v is True or v is False:
        return v
    t = type(v)
    if t is int or t is str or t is float:
        return v
    if t is Keyword or t is Symbol:
        return str(v)
    if t is list or t is tuple:
        return [to_plain(x) for x in v]
    if t is dict:
        out = {}
        for k, x in v.items():
            pk = to_plain(k)
            if not isinstance(pk, (str, int, float, bool)) and pk is not None:
                pk = dumps(k)
            out[pk] = to_plain(x)
        return out
    if t is frozenset or t is set:
        items = [to_plain(x) for x in v]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=lambda x: (type(x).__name__, repr(x)))
    if t is Tagged:
        return to_plain(v.value)
    return v


# ---------------------------------------------------------------------------------------------
# Writer

_KEYWORD_OK = re.compile(r"[A-Za-z*+!_?<>=.$%&'|/-][A-Za-z0-9*+!_?<>=.$%&'|/:#-]*")


def keyword(name: str) -> str:
    """EDN text for `name` as a keyword when it can be one, else as a string."""
    if _KEYWORD_OK.fullmatch(name) and not name.endswith("/") and not name.startswith("/"):
        return ":" + name
    return _dump_str(name)


def _dump_str(s: str) -> str:
    return (
        '"'
        + s.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("\r", "\\r")
        + '"'
    )


def dumps(v: Any) -> str:
    """EDN text for a Python value (see the module docstring for the shapes)."""
    if v is None:
        return "nil"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, Keyword):
        return keyword(str(v))
    if isinstance(v, Symbol):
        return str(v)
    if isinstance(v, str):
        return _dump_str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "##NaN"
        if math.isinf(v):
            return "##Inf" if v > 0 else "##-Inf"
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(dumps(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{dumps(k)} {dumps(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (set, frozenset)):
        return "#{" + " ".join(sorted(dumps(x) for x in v)) + "}"
    if isinstance(v, Tagged):
        return f"#{v.tag} {dumps(v.value)}"
    raise TypeError(f"cannot write {type(v).__name__} as EDN")
