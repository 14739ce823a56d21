"""Range checks for the numbers alert-infra accepts (timeouts, windows, counts), in one place.

Every number a user can give (an argument, a configuration value) goes through one of
these functions, so each has the same bounds and the same kind of error everywhere:
finite, in range, the right type, and an error that names the setting and says what
is allowed *without quoting the value* (a 5,000-digit integer must not become a
5,000-digit message, and a misplaced secret must not be echoed).

The upper bounds are documented in ``docs/guide/bounds.md``. They are far above any
sensible setting and far below what the standard library can wait for
(``threading.TIMEOUT_MAX``, ``asyncio``'s loop clock), so a setting that passes never
fails later with ``OverflowError``.
"""

from __future__ import annotations

import os

from .exceptions import AlertConfigurationError, AlertValidationError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "HINT_INPUT_LIMIT",
    "MAX_COUNT",
    "MAX_TIMEOUT",
    "MAX_WINDOW",
    "MAX_WORKERS",
    "check_count",
    "check_seconds",
    "closest",
    "describe",
    "did_you_mean",
    "sqlite_file",
]

#: The longest timeout or deadline, in seconds (one hour): a channel that needs longer is down.
MAX_TIMEOUT = 3600.0
#: The longest window (de-duplication window, throttle period, backoff cap), in seconds: 30 days.
MAX_WINDOW = 30 * 86400.0
#: The largest count (retry attempts, rates, bursts, workers, queue sizes, retention).
MAX_COUNT = 1_000_000_000
#: The most worker threads of one dispatcher (``max_workers``, in code and configuration).
MAX_WORKERS = 256


def describe(value: object) -> str:
    """A short, secret-free description of a refused value: its type, never its text."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer out of range"
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "an infinite number"
        return "a number out of range"
    if value is None:
        return "nothing"
    return f"a {type(value).__name__}"


def _error(error: type[Exception] | None, message: str) -> Exception:
    if error is None:
        error = AlertValidationError
    return error(message)


def check_seconds(
    value: Any,
    what: str,
    *,
    maximum: float = MAX_TIMEOUT,
    zero: bool = False,
    error: type[Exception] | None = None,
) -> float:
    """``value`` as a float of seconds in ``(0, maximum]`` (``[0, maximum]`` with ``zero``).

    Raises ``error`` (default :class:`~alert_infra.AlertValidationError`) naming ``what``
    and the allowed range, never quoting the value.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            ok = False
        else:
            ok = (0.0 <= number <= maximum) if zero else (0.0 < number <= maximum)
    if not ok:
        low = "0" if zero else "more than 0"
        raise _error(
            error, f"{what}: must be a number of seconds from {low} to {maximum:g}, got {describe(value)}"
        ) from None
    return number


def check_count(
    value: Any,
    what: str,
    *,
    minimum: int = 1,
    maximum: int = MAX_COUNT,
    error: type[Exception] | None = None,
) -> int:
    """``value`` as an int in ``[minimum, maximum]``; the error names ``what``, never the value."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _error(error, f"{what}: must be a whole number from {minimum} to {maximum:,}, got {describe(value)}")
    return int(value)


#: The most characters of a refused name that :func:`closest` looks at (the rest is ignored): a
#: near miss is a name, and difflib's work grows with the product of the two lengths.
HINT_INPUT_LIMIT = 128
#: A difflib match at least this close wins over a name found inside the word (``retry_attemps``
#: is ``retry_attempts``, not ``retry``); below it, a known name inside the word wins
#: (``slack_webhook`` is ``slack``, whose difflib ratio to ``webhook`` is only 0.7).
_STRONG_RATIO = 0.8
#: A known name found inside the refused word counts when it has at least this many characters
#: (``to`` or ``at`` inside a word says nothing).
_MIN_CONTAINED = 3


def _words(text: str) -> list[str]:
    """``text`` cut into lower-case words at separators and camelCase humps (``MS-Teams`` ->
    ``ms``, ``teams``; ``pagerDuty`` -> ``pager``, ``duty``)."""
    words: list[str] = []
    current = ""
    previous = ""
    for char in text:
        if not char.isalnum():
            if current:
                words.append(current)
            current = ""
        elif current and char.isupper() and previous.islower():
            words.append(current)
            current = char.lower()
        else:
            current += char.lower()
        previous = char
    if current:
        words.append(current)
    return words


def _contained_at(word_words: list[str], flat: str, known: str) -> int:
    """Where ``known`` sits inside the refused word (a character offset in ``flat``), or -1.

    ``known`` is inside when its words are a run of the word's words (``slack_webhook`` holds
    ``slack``), or when, without separators, it begins or ends the word and has four letters or
    more (``slackwebhook``, ``msteams``)."""
    parts = _words(known)
    squashed = "".join(parts)
    if len(squashed) < _MIN_CONTAINED or squashed == flat:
        return -1
    size = len(parts)
    offset = 0
    for i in range(len(word_words) - size + 1):
        if word_words[i : i + size] == parts:
            return offset
        offset += len(word_words[i])
    if len(squashed) >= 4:
        if flat.startswith(squashed):
            return 0
        if flat.endswith(squashed):
            return len(flat) - len(squashed)
    return -1


def closest(word: object, choices: Any, *, cutoff: float = 0.6) -> str | None:
    """The one of ``choices`` that ``word`` most likely meant, or ``None``: never ``word`` itself.

    In order: the same name in another case (``Slack`` -> ``slack``) or spelling of separators
    (``pager_duty`` -> ``pagerduty``); a difflib match at least 0.8 close (one typo); a known name
    inside the word (``slack_webhook``, ``telegram_bot``, ``MS-Teams``: the earliest, then the
    longest); a difflib match above ``cutoff``; a word that begins a known name and covers at least
    ``cutoff`` of it (``slac`` -> ``slack``). Only the first :data:`HINT_INPUT_LIMIT` characters
    of ``word`` are read, so a 1 MB value costs what a short one does. Never raises.
    """
    if not isinstance(word, str) or not word:
        return None
    try:
        options = sorted({c for c in choices if isinstance(c, str) and c and c != word})
    except TypeError:  # not iterable: no suggestion rather than an error inside an error message
        return None
    if not options:
        return None
    text = word[:HINT_INPUT_LIMIT]
    lowered: dict[str, str] = {}
    for option in options:
        lowered.setdefault(option.lower(), option)
    exact = lowered.get(text.lower())
    if exact is not None and exact != word:
        return exact
    word_words = _words(text)
    flat = "".join(word_words)
    if flat:
        for option in options:
            if "".join(_words(option)) == flat and option != word:
                return option
    import difflib  # a did-you-mean only, on an error path: difflib stays out of every import

    target = text.lower()
    best, best_ratio = None, 0.0
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(target)  # difflib caches what it learns of the second sequence: set it once
    for candidate in lowered:
        matcher.set_seq1(candidate)
        # The two cheap upper bounds first (as difflib.get_close_matches does): most names are
        # refused without the quadratic ratio().
        floor = max(best_ratio, cutoff)
        if matcher.real_quick_ratio() < floor or matcher.quick_ratio() < floor:
            continue
        ratio = matcher.ratio()
        if ratio >= floor and ratio > best_ratio:
            best, best_ratio = candidate, ratio
    if best is not None and best_ratio >= max(_STRONG_RATIO, cutoff) and lowered[best] != word:
        return lowered[best]
    if flat:
        found = [
            (at, -len(option), option) for option in options if (at := _contained_at(word_words, flat, option)) >= 0
        ]
        if found:
            return min(found)[2]
    if best is not None and best_ratio >= cutoff and lowered[best] != word:
        return lowered[best]
    if len(flat) >= 3:
        starts = [o for o in options if (s := "".join(_words(o))).startswith(flat) and len(flat) >= cutoff * len(s)]
        if len(starts) == 1:
            return starts[0]
    return None


def did_you_mean(word: object, choices: Any, *, cutoff: float = 0.6) -> str:
    """``"; did you mean 'slack'?"`` when ``word`` is a near miss of one of ``choices``, else ``""``.

    For every "unknown X" error (types, options, settings, tables, channel names, verbs): a suffix
    to append to the message. What counts as a near miss is :func:`closest`'s rule (another case,
    a typo, a known name with a prefix or suffix such as ``slack_webhook``).
    """
    found = closest(word, choices, cutoff=cutoff)
    return f"; did you mean {found!r}?" if found is not None else ""


def sqlite_file(url: object, setting: str, example: str) -> str:
    """The file a ``sqlite:///…`` setting names: ``sqlite:///var/x`` and ``sqlite:////var/x`` are
    both ``/var/x`` (ours and SQLAlchemy's spelling of an absolute path), ``sqlite:///~/x``
    expands the home folder.

    Raises:
        AlertConfigurationError: not a ``sqlite:///`` URL naming a file; the message names
            ``setting`` and shows ``example``, never the value.
    """
    path = url[len("sqlite://") :] if isinstance(url, str) and url.startswith("sqlite:///") else "/"
    if path.startswith("/~"):
        path = os.path.expanduser(path[1:])
    else:
        path = "/" + path.lstrip("/")
    if path in ("/", "") or path.endswith("/"):
        raise AlertConfigurationError(f'{setting}: must be a sqlite:/// URL naming a file, such as "{example}"')
    return path
