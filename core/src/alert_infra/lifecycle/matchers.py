"""Matchers in Alertmanager's syntax, on an alert's fields and the channel it is going to.

One matcher is ``NAME OP "VALUE"``:

========== =========================================================================
``=``      the field equals the value
``!=``     the field does not equal the value
``=~``     the regular expression matches the *whole* field (anchored at both ends)
``!~``     the regular expression does not match the whole field
========== =========================================================================

``NAME`` is one of ``severity``, ``source``, ``title``, ``tags``, ``channel`` or
``metadata.KEY``. A field the alert does not have (no source, no such metadata key) is the
empty string, as a missing label is in Alertmanager: ``source=""`` matches an alert without
a source. Metadata values are compared as text (``True`` is ``"true"``, numbers as written by
``str``, other values as JSON).

``tags`` holds several values: ``tags="db"`` and ``tags=~"db-.*"`` match when *any* tag
matches; ``tags!="db"`` and ``tags!~"db-.*"`` match when *no* tag does (each negative matcher is
exactly the negation of its positive twin). An alert without tags has the single value ``""``.

Values are written in double quotes; inside them ``\\"`` is a quote, ``\\\\`` a backslash,
``\\n`` a newline and ``\\t`` a tab; any other backslash stays as written, so
``code=~"\\d+"`` means the regular expression ``\\d+``. ``str(matcher)`` gives the canonical
form, and ``parse_matcher(str(m)) == m`` for every matcher.

Regular expressions are compiled with `google-re2 <https://github.com/google/re2>`_ (linear
time) when the ``re2`` module can be imported. Otherwise Python's :mod:`re` runs them, and only
patterns that cannot backtrack catastrophically are accepted: at most
:data:`MAX_PATTERN_CHARS` characters, no quantifier inside a quantified group, no quantified
alternation, no back-references or look-arounds, and a bound on how much the quantifiers in
sequence may backtrack (at most two unbounded ones such as ``.*foo.*``). Either way a value is
matched on its first :data:`MAX_VALUE_CHARS` characters only.
"""

from __future__ import annotations

import json
import re

from .._checks import closest
from ..exceptions import AlertConfigurationError
from ..security import guarded_repr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any, Callable

    from ..alert import Alert

__all__ = [
    "FIELDS",
    "MAX_PATTERN_CHARS",
    "MAX_VALUE_CHARS",
    "OPERATORS",
    "Matcher",
    "MatcherError",
    "alert_values",
    "matches_all",
    "parse_matcher",
    "parse_matchers",
    "regex_engine",
]

#: The fields a matcher can name (besides ``metadata.KEY``).
FIELDS = ("severity", "source", "title", "tags", "channel")
#: The operators, longest first (the order the parser tries them in).
OPERATORS = ("=~", "!~", "!=", "=")
#: The longest pattern accepted without google-re2.
MAX_PATTERN_CHARS = 256
#: How many characters of a value a matcher looks at.
MAX_VALUE_CHARS = 1024
#: The longest matcher text accepted at all.
MAX_MATCHER_CHARS = 4096
#: Without google-re2: the most backtracking a pattern's quantifiers may imply (their ranges
#: multiplied, each at most MAX_VALUE_CHARS + 1): two unbounded quantifiers fit, three do not.
MAX_BACKTRACK = 2 * (MAX_VALUE_CHARS + 1) ** 2

_METADATA = "metadata."
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


class MatcherError(AlertConfigurationError, ValueError):
    """A matcher that cannot be parsed or whose pattern is refused.

    ``matcher`` is the text (cut to 80 characters), ``position`` the 0-based offset of the
    problem in it (``None`` when it is about the pattern as a whole).
    """

    def __init__(self, message: str, matcher: str = "", position: int | None = None) -> None:
        shown = matcher if len(matcher) <= 80 else matcher[:79] + "…"
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"matcher {shown!r}{where}: {message}" if matcher else message)
        self.matcher = shown
        self.position = position


# -- regular expressions -------------------------------------------------------------------------

_RE2: Any = None
_RE2_CHECKED = False


def regex_engine() -> str:
    """``"re2"`` when google-re2 is importable, else ``"re"`` (with the pattern checks)."""
    global _RE2, _RE2_CHECKED
    if not _RE2_CHECKED:
        try:
            import re2  # type: ignore[import-not-found, unused-ignore]  # the optional re2 engine, tried once

            _RE2 = re2
        except ImportError:
            _RE2 = None
        _RE2_CHECKED = True
    return "re" if _RE2 is None else "re2"


def _sre_parse(pattern: str) -> Any:
    try:
        # checking a pattern only: the regex parser (its 3.11+ name)
        from re import _parser as parser  # type: ignore[attr-defined, unused-ignore]
    except ImportError:  # Python < 3.11
        import sre_parse as parser  # its name before Python 3.11
    return parser.parse(pattern)


def _check_backtracking(pattern: str, text: str) -> None:
    """Refuse the shapes that make a backtracking engine slow (see the module docstring)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise MatcherError(
            f"the pattern has {len(pattern)} characters; at most {MAX_PATTERN_CHARS} without google-re2 "
            "(shorten it, or pip install google-re2)",
            text,
        )
    try:
        tree = _sre_parse(pattern)
    except re.error as exc:
        raise MatcherError(f"not a valid regular expression: {exc.msg}", text) from None
    _cost(list(tree), text, inside_repeat=False)


def _has_repeat_or_branch(items: Iterable[Any]) -> bool:
    for op, av in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT", "BRANCH"):
            return True
        if name == "SUBPATTERN" and _has_repeat_or_branch(av[-1]):
            return True
        if name == "ATOMIC_GROUP" and _has_repeat_or_branch(av):
            return True
    return False


def _cost(items: Sequence[Any], text: str, inside_repeat: bool) -> int:
    total = 1
    for op, av in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, body = av
            if _has_repeat_or_branch(body):
                raise MatcherError(
                    "a quantified group holds another quantifier or an alternation (catastrophic backtracking); "
                    "flatten it (e.g. '[ab]+' rather than '(a+b?)+', 'x(ab)+' rather than 'x(a|ab)+') "
                    "or pip install google-re2",
                    text,
                )
            span = min(high, MAX_VALUE_CHARS) - min(low, MAX_VALUE_CHARS) + 1
            total *= max(span, 1) * _cost(list(body), text, True)
        elif name == "SUBPATTERN":
            total *= _cost(list(av[-1]), text, inside_repeat)
        elif name == "ATOMIC_GROUP":
            total *= _cost(list(av), text, inside_repeat)
        elif name == "BRANCH":
            total *= sum(_cost(list(branch), text, inside_repeat) for branch in av[1])
        elif name in ("GROUPREF", "GROUPREF_EXISTS", "ASSERT", "ASSERT_NOT"):
            raise MatcherError(
                "back-references and look-arounds are not supported (they are not linear-time); "
                "rewrite the pattern without them",
                text,
            )
        if total > MAX_BACKTRACK:
            raise MatcherError(
                "the pattern could backtrack too much (more than two unbounded quantifiers such as '.*' in "
                "a row); use fewer, e.g. 'db-.*' rather than '.*db.*-.*', or pip install google-re2",
                text,
            )
    return total


def _compile(pattern: str, text: str) -> Callable[[str], object]:
    """A test of a whole value: truthy when the pattern matches all of it."""
    if regex_engine() == "re2":
        try:
            compiled = _RE2.compile(pattern)
        except Exception as exc:  # noqa: BLE001 - re2 raises its own error class
            raise MatcherError(f"not a valid regular expression ({type(exc).__name__})", text) from None
        return compiled.fullmatch  # type: ignore[no-any-return]
    _check_backtracking(pattern, text)
    try:
        compiled_re = re.compile(pattern)
    except re.error as exc:
        raise MatcherError(f"not a valid regular expression: {exc.msg}", text) from None
    return compiled_re.fullmatch


# -- the matcher ----------------------------------------------------------------------------------


class Matcher:
    """One matcher: ``name``, ``op`` (``=``, ``!=``, ``=~``, ``!~``) and ``value``.

    Build one with :func:`parse_matcher` or ``Matcher(name, op, value)`` (validated the same
    way). Immutable, hashable, equal when name, operator and value are.
    """

    __slots__ = ("_negative", "_test", "name", "op", "value")

    name: str
    op: str
    value: str
    _test: Callable[[str], object]
    _negative: bool

    def __init__(self, name: str, op: str, value: str, *, _text: str | None = None) -> None:
        text = _text if _text is not None else f"{name}{op}{_quote(value) if isinstance(value, str) else value!r}"
        _check_name(name, text, 0)
        if op not in OPERATORS:
            raise MatcherError(f"unknown operator {op!r}; use one of = != =~ !~", text)
        if not isinstance(value, str):
            raise MatcherError("the value must be a string", text)
        test: Callable[[str], object]
        if op in ("=~", "!~"):
            test = _compile(value, text)
        else:
            test = value.__eq__
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "_test", test)
        object.__setattr__(self, "_negative", op in ("!=", "!~"))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Matcher is immutable")

    @property
    def is_equality(self) -> bool:
        """True for ``name="value"`` (what the silence index keys on)."""
        return self.op == "="

    @property
    def negative(self) -> bool:
        return self.op in ("!=", "!~")

    def matches_values(self, values: Sequence[str]) -> bool:
        """Match the field's values (one for most fields, the tags for ``tags``): a positive
        matcher needs one value that matches, a negative one needs none."""
        test = self._test
        hit = False
        for value in values:
            if test(value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS]):
                hit = True
                break
        return not hit if self._negative else hit

    def matches(self, alert: Alert, channel: str = "") -> bool:
        """Whether ``alert`` (going to ``channel``) matches."""
        return self.matches_values(alert_values(alert, self.name, channel))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Matcher):
            return NotImplemented
        return (self.name, self.op, self.value) == (other.name, other.op, other.value)

    def __hash__(self) -> int:
        return hash((self.name, self.op, self.value))

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"

    @guarded_repr
    def __repr__(self) -> str:
        return f"Matcher({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Matcher, (self.name, self.op, self.value))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def _check_name(name: object, text: str, position: int) -> None:
    if not isinstance(name, str) or not name:
        raise MatcherError('a matcher starts with a field name, e.g. source="billing"', text, position)
    if name in FIELDS:
        return
    if name.startswith(_METADATA) and len(name) > len(_METADATA):
        return
    known = [*FIELDS, "metadata.KEY"]
    close = closest(name, known)
    hint = f"did you mean {close!r}? " if close else ""
    raise MatcherError(f"unknown field {name[:40]!r}; {hint}fields are {', '.join(known)}", text, position)


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher, e.g. ``'source="billing"'`` or ``'metadata.region=~"eu-.*"'``.

    Raises:
        MatcherError: naming the matcher, the position and what to write instead.
    """
    if not isinstance(text, str):
        raise MatcherError(f"a matcher is a string such as 'source=\"billing\"', got {type(text).__name__}")
    if len(text) > MAX_MATCHER_CHARS:
        raise MatcherError(f"longer than {MAX_MATCHER_CHARS} characters", text)
    matcher, end = _parse_at(text, 0)
    rest = text[end:].strip()
    if rest:
        raise MatcherError(
            "unexpected text after the value; write one matcher per string, or separate them with ','",
            text,
            end + (len(text[end:]) - len(text[end:].lstrip())),
        )
    return matcher


def parse_matchers(source: str | Iterable[str]) -> tuple[Matcher, ...]:
    """Matchers from a list of strings, or from one string ``'{a="x", b=~"y"}'`` / ``'a="x", b=~"y"'``."""
    if isinstance(source, str):
        text = source.strip()
        if len(text) > MAX_MATCHER_CHARS * 4:
            raise MatcherError("matcher list too long", text)
        if text.startswith("{"):
            if not text.endswith("}"):
                raise MatcherError("a '{' list must end with '}'", text, len(text))
            text = text[1:-1]
        found: list[Matcher] = []
        position = 0
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text):
                break
            matcher, position = _parse_at(text, position)
            found.append(matcher)
            while position < len(text) and text[position].isspace():
                position += 1
            if position < len(text):
                if text[position] != ",":
                    raise MatcherError("expected ',' between matchers", text, position)
                position += 1
        return tuple(found)
    if not hasattr(source, "__iter__"):
        raise MatcherError(f"matchers are a list of strings, got {type(source).__name__}")
    return tuple(parse_matcher(item) for item in source)


def _parse_at(text: str, start: int) -> tuple[Matcher, int]:
    position = start
    while position < len(text) and text[position].isspace():
        position += 1
    name_start = position
    while position < len(text) and text[position] not in '=!~"' and not text[position].isspace():
        position += 1
    name = text[name_start:position]
    if not name:
        raise MatcherError('expected a field name, e.g. source="billing"', text, name_start)
    _check_name(name, text, name_start)
    while position < len(text) and text[position].isspace():
        position += 1
    op_start = position
    op = next((candidate for candidate in OPERATORS if text.startswith(candidate, position)), None)
    if op is None:
        raise MatcherError(f'expected an operator (= != =~ !~) after {name!r}, e.g. {name}="value"', text, op_start)
    position += len(op)
    if op == "=" and text.startswith("=", position):
        raise MatcherError("'==' is not an operator: equality is a single '='", text, op_start)
    while position < len(text) and text[position].isspace():
        position += 1
    if position >= len(text) or text[position] != '"':
        raise MatcherError(
            f'the value must be in double quotes, e.g. {name}{op}"value"',
            text,
            position,
        )
    position += 1
    chars: list[str] = []
    while True:
        if position >= len(text):
            raise MatcherError("the value has no closing '\"' (write \\\" for a quote inside it)", text, position)
        char = text[position]
        if char == '"':
            position += 1
            break
        if char == "\\" and position + 1 < len(text):
            following = text[position + 1]
            if following in _ESCAPES:
                chars.append(_ESCAPES[following])
                position += 2
                continue
        chars.append(char)
        position += 1
    return Matcher(name, op, "".join(chars), _text=text), position


# -- values of an alert ---------------------------------------------------------------------------


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def alert_values(alert: Alert, name: str, channel: str = "") -> tuple[str, ...]:
    """The values a matcher on ``name`` looks at (one, or every tag for ``tags``)."""
    if name == "tags":
        return tuple(alert.tags) or ("",)
    if name == "channel":
        return (channel,)
    if name == "severity":
        return (alert.severity,)
    if name == "source":
        return (alert.source or "",)
    if name == "title":
        return (alert.title,)
    if name.startswith(_METADATA):
        return (_text(alert.metadata.get(name[len(_METADATA) :])),)
    return ("",)


def matches_all(matchers: Iterable[Matcher], alert: Alert, channel: str = "") -> bool:
    """True when every matcher matches (an empty list matches everything)."""
    return all(matcher.matches(alert, channel) for matcher in matchers)
