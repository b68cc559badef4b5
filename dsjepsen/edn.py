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

Nesting deeper than MAX_DEPTH is an error: the reader itself would cope, but what consumes its
values (to_plain, dumps, the models' freeze) recurses. `finite=True` refuses `##NaN`, `##Inf`
and decimals that overflow to infinity, as history readers need (NaN never equals itself).
"""

from __future__ import annotations

import math
import re
import sys
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
# One token per match; blanks, commas and comments are skipped inside the pattern, but a newline
# is a token of its own so the parser can count lines without knowing positions. findall runs
# the whole scan in C, and the parser only loops over the tokens. The skip is atomic: at the
# end of a text that does not end with a newline, trailing blanks or a comment are skipped and
# match nothing, rather than being given back to make a token of their last character.
_TOKEN_ALTS = (
    r"\n"
    r'|"(?:[^"\\]|\\.)*"'
    r"|\#\{|[\[\](){}]"
    r"|\#_"
    r"|\#\#[A-Za-z-]+"
    r"|\#:[^" + _DELIMS + r"]+(?=\{)"
    r"|\#[A-Za-z][^" + _DELIMS + r"]*"
    r"|\\(?:newline|space|tab|return|formfeed|backspace|u[0-9a-fA-F]{4}|.)"
    r"|[^" + _DELIMS + r"\\][^" + _DELIMS + r"]*"
    r"|."
)
_TOKENS = re.compile(r"(?>(?:[^\S\n]+|,|;[^\n]*)*)(" + _TOKEN_ALTS + r")", re.DOTALL)
_INT = re.compile(r"[+-]?[0-9]+N?")
_FLOAT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?M?")
_RATIO = re.compile(r"[+-]?[0-9]+/[0-9]+")
#: deepest nesting of collections, tags and discards accepted
MAX_DEPTH = 100
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
        try:
            if _INT.fullmatch(text):
                return int(text.rstrip("N"))
            if _FLOAT.fullmatch(text):
                return float(text.rstrip("M"))
            if _RATIO.fullmatch(text):
                num, den = text.split("/")
                return int(num) / int(den)
        except ZeroDivisionError:
            raise ValueError(f"ratio {text[:40]} divides by zero") from None
        except OverflowError:
            raise ValueError(f"ratio {text[:40]} is too large for a number") from None
        except ValueError:
            raise ValueError(
                f"integer with more than {sys.get_int_max_str_digits()} digits; refused"
            ) from None
        raise ValueError(f"invalid number {text[:60]!r}")
    if text in _CONST:
        return _CONST[text]
    return Symbol(text)


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted(((_hashable(k), _hashable(x)) for k, x in v.items()), key=repr))
    return v


def _finish(kind: str, items: list[Any], line: int) -> Any:
    if kind == "[" or kind == "(":
        return items
    if kind == "{" or kind.startswith("#:"):
        if len(items) % 2:
            raise EdnError("map literal has an odd number of forms", line)
        out: dict[Any, Any] = {}
        seen: set[Any] = set()
        ns = kind[2:] if kind.startswith("#:") else None
        for n in range(0, len(items), 2):
            k = items[n]
            if ns is not None and isinstance(k, Keyword) and "/" not in k:
                k = Keyword(f"{ns}/{k}")
            # EDN (and Clojure's reader) refuses a key given twice. Keywords read as plain
            # strings here, so :f and "f" are one key too: refused rather than one silently
            # overwriting the other.
            exact = _hashable(k)
            if exact in seen:
                raise EdnError(f"map literal has the key {_shown(k)} twice", line)
            seen.add(exact)
            try:
                out[k] = items[n + 1]
            except TypeError:
                out[_hashable(k)] = items[n + 1]
        return out
    # "#{"
    members = [_hashable(x) for x in items]
    if len(set(members)) != len(members):
        twice = next(x for n, x in enumerate(items) if members[n] in members[:n])
        raise EdnError(f"set literal has the element {_shown(twice)} twice", line)
    return frozenset(_hashable(x) for x in items)


def _shown(value: Any) -> str:
    """A key or element for an error message: EDN-ish and short."""
    text = f":{value}" if isinstance(value, Keyword) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def iter_forms(
    text: str, *, unwrap: bool = False, finite: bool = False
) -> Iterator[tuple[int, Any]]:
    """Yield (line, value) for each top-level form of `text`.

    With `unwrap`, a text that starts with a vector or list yields that collection's elements
    instead, each with its own starting line; this is how a history.edn written as one vector
    still gets a line number per op. `finite`: see the module docstring.
    """
    for line, value, _ in _parse(_TOKENS.findall(_ended(text)), unwrap, finite):
        yield line, value


def _ended(text: str) -> str:
    """The text ending with a newline: findall tries every position, so a comment that ends
    the text without one would be scanned again from inside and read as tokens."""
    return text if text.endswith("\n") else text + "\n"


_OUTER = "outer"
_TAG = "tag"
_DISC = "disc"


def _parse(tokens: list[str], unwrap: bool, finite: bool = False) -> Iterator[tuple[int, Any, int]]:
    """Parse a token list; yield (line, value, number of tokens consumed) per top-level form.

    The stack holds [kind, items, line, tag] frames; atoms are cached per token text because a
    history repeats the same keywords and small integers hundreds of thousands of times.
    """
    stack: list[list[Any]] = []
    cache: dict[str, Any] = {}
    line = 1
    seen_top = False
    n = 0
    for tok in tokens:
        n += 1
        c = tok[0]
        if c == "\n":
            line += 1
            continue
        value_line = line
        if tok in cache:
            value = cache[tok]
        elif c == '"':
            if len(tok) == 1:  # the string pattern did not match: no closing quote
                raise EdnError("unterminated string", line)
            value = tok[1:-1]
            if "\\" in value:
                try:
                    value = _ESCAPE.sub(_unescape, value)
                except ValueError as e:
                    raise EdnError(str(e), line) from None
            line += tok.count("\n")
        elif c in "[({" or tok == "#{":
            if stack and stack[-1][3] is _SKIP_BRACE:
                stack[-1][3] = None  # the `{` of a `#:ns{` map
                continue
            if unwrap and not stack and not seen_top and (c == "[" or c == "("):
                seen_top = True
                stack.append([_OUTER, None, line, c])
            else:
                if len(stack) >= MAX_DEPTH:
                    raise EdnError(_too_deep(), line)
                stack.append([tok, [], line, None])
            continue
        elif c in "])}":
            if not stack or stack[-1][0] in (_TAG, _DISC):
                raise EdnError(f"unexpected {tok!r}", line)
            kind, items, value_line, opener = stack.pop()
            if kind == _OUTER:
                if tok != _CLOSER[opener]:
                    raise EdnError(f"unexpected {tok!r}", line)
                continue
            expected = "}" if kind[0] == "#" else _CLOSER[kind]
            if tok != expected:
                raise EdnError(
                    f"expected {expected!r} to close {kind!r} from line {value_line}, "
                    f"found {tok!r}",
                    line,
                )
            value = _finish(kind, items, value_line)
        elif c == "#":
            if len(stack) >= MAX_DEPTH:
                raise EdnError(_too_deep(), line)
            if tok == "#_":
                stack.append([_DISC, None, line, None])
                continue
            if tok[1] == "#":
                if tok not in _SPECIAL:
                    raise EdnError(f"unknown symbolic value {tok[:40]!r}", line)
                if finite:
                    raise EdnError(f"{tok} is not a finite number; refused", line)
                value = _SPECIAL[tok]
            elif tok[1] == ":":
                # `#:ns{...}`: the pattern guarantees the `{` token comes next.
                stack.append(["#:" + tok[2:], [], line, _SKIP_BRACE])
                continue
            elif len(tok) > 1 and tok[1].isalpha():
                stack.append([_TAG, None, line, tok[1:]])
                continue
            else:
                raise EdnError(f"unexpected character {tok!r}", line)
        elif c == "\\":
            ch = tok[1:]
            if len(ch) == 1:
                value = ch
            elif ch in _CHARS:
                value = _CHARS[ch]
            else:
                value = chr(int(ch[1:], 16))
        elif c in _BAD_START:
            raise EdnError(f"unexpected character {tok[:40]!r}", line)
        else:
            try:
                value = _atom(tok)
            except ValueError as e:
                raise EdnError(str(e), line) from None
            if finite and type(value) is float and not math.isfinite(value):
                raise EdnError(f"number {tok[:40]} is not finite; refused", line)
            cache[tok] = value
        # Deliver the finished value to whatever encloses it.
        while True:
            if not stack or stack[-1][0] is _OUTER:
                seen_top = True
                yield value_line, value, n
                break
            top = stack[-1]
            kind = top[0]
            if kind is _TAG:
                stack.pop()
                value = Tagged(top[3], value)
                value_line = top[2]
                continue
            if kind is _DISC:
                stack.pop()
                break
            if top[3] is _SKIP_BRACE:
                raise EdnError("expected '{' after a namespaced map prefix", line)
            top[1].append(value)
            break
    if stack:
        kind, _, opened, _ = stack[-1]
        what = "the outer collection" if kind is _OUTER else repr(kind)
        raise EdnError(f"end of input inside {what} opened on line {opened}", opened)


_SKIP_BRACE = object()
_BAD_START = frozenset("\"'`~^@")


def _too_deep() -> str:
    return f"nesting deeper than {MAX_DEPTH} levels"


def loads(text: str, *, finite: bool = False) -> Any:
    """Parse exactly one EDN value."""
    forms = list(iter_forms(text, finite=finite))
    if len(forms) != 1:
        raise EdnError(f"expected one EDN value, found {len(forms)}", forms[1][0] if forms else 1)
    return forms[0][1]


def read_prefix(text: str, *, finite: bool = False) -> tuple[Any, str]:
    """Parse the first EDN value of `text`; return it and the unparsed rest (stripped)."""
    matches = list(_TOKENS.finditer(_ended(text)))
    for _, value, used in _parse([m.group(1) for m in matches], False, finite):
        return value, text[matches[used - 1].end() :].strip()
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
