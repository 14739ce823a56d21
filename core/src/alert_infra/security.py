"""Redaction: keep secrets out of alerts, logs, results and audit records.

Three layers, applied in this order to every string that leaves the process:

1. **Configured secrets.** Every value of a transport's ``secret_fields``
   (webhook URLs, bot tokens, API keys, passwords) is registered with
   :func:`register_secret` when the transport is built, and any occurrence of it
   (or of the path of a secret URL, which is what HTTP libraries print) is
   replaced by ``[REDACTED]``. Where occurrences overlap (a URL and its own path)
   the union is masked, so the longest match always wins.
2. **Value patterns.** Secrets that hide in free text are masked wherever they
   appear: ``Bearer``/``Basic`` credentials, passwords in URLs
   (``https://user:pw@host``), token-bearing query parameters, Slack webhook
   URLs, Telegram bot tokens, Slack/GitHub/AWS/Stripe/SendGrid/Resend/Google
   key shapes, JWTs, PEM private keys and ``password=…``-style assignments.
   Plugins add patterns with the ``alert_infra_register_redactors`` hook.
3. **Sensitive keys.** In mappings (alert metadata), the value of a key that
   names a secret is replaced as a whole, whatever it is.

Cost
----
Redaction runs in the caller's thread (inside ``Alert()``), on text an attacker may
control, so every step is linear in the length of the text:

* every built-in pattern starts only at a fixed literal or at the *start* of a run
  of its characters (a look-behind instead of ``\\b`` where the run may contain
  ``-`` or ``.``), and no two unbounded runs of one pattern can overlap, so no input
  makes a pattern backtrack more than a bounded amount per character (the tests run
  each pattern on adversarial inputs of 10k and 80k characters);
* configured secrets are found in one pass whose cost does not depend on how many
  are registered: a few (up to :data:`SMALL_SECRET_SET` per length class) are
  searched with ``str.find``; beyond that, an index of fixed-length slices of each
  secret (a "k-gram" index) is probed every few characters of the text (the slices
  are cut and checked against the index in C), so the work does not depend on the
  number of secrets. Probe stride and slice length depend on the secret's length:
  8-character slices every 24 characters for secrets of 32 characters or more, every 8
  for 16-31, 4 every 4 for 8-15, and 4 at every position for 4-7 (short secrets are
  rare; use long ones). Memory: one index entry per probe stride, per secret (24 for
  a webhook URL).
  Patterns registered by plugins are the plugin's responsibility.
* short texts (up to :data:`TEXT_CACHE_MAX_LENGTH` characters) are remembered,
  :data:`TEXT_CACHE_SIZE` at most, until :func:`redaction_generation` moves.

Configured secrets: scope and bounds
------------------------------------
``register_secret(value, owner=obj)`` ties a secret to ``obj`` (a transport, a
dispatcher, a state backend): it stays registered while at least one of its owners
is alive and goes away when the last one is garbage-collected or
:func:`release_secrets` is called for it. :meth:`BaseTransport.register_secrets`
passes ``owner=self``, so channels built and dropped over and over leave nothing
behind. Without an owner (or with an owner that cannot be weakly referenced, such
as an ``int``) a secret is process-wide, as in 0.1.x. Process-wide secrets are never
forgotten silently: past :data:`MAX_PROCESS_WIDE_SECRETS` distinct values a warning
is logged once (logger ``alert_infra.security``) and they are all kept; the cost of
redaction does not grow with them (above). :func:`redaction_generation` changes
whenever the set of secrets changes, releases included.

The key rule
------------
A key is split into words at ``_``, ``-``, ``.``, spaces and camelCase boundaries,
compared case-insensitively (a trailing plural ``s`` is ignored), and is sensitive
when

* one word *is* one of the documented 0.1.x keywords (:data:`SENSITIVE_KEYWORDS`:
  ``password``, ``token``, ``secret``, ``authorization``, ``cookie``, ``session``,
  ``csrf``, ``access``, ``refresh``; ``api_key`` and ``private_key`` as two
  consecutive words or one, ``apikey``): 0.1.x matched substrings, and code written
  for it relies on ``session_value``, ``user_access_value``, ``access_level`` or
  ``user_refresh_value`` being masked, so those are (fail closed);
* one word *is* or *ends with* a secret word (``password``, ``passwd``,
  ``pwd``, ``passphrase``, ``secret``, ``token``, ``apikey``,
  ``authorization``, ``cookie``, ``csrf``, ``xsrf``, ``credential``,
  ``privatekey``, ``sessionid``, ``jwt``, ``bearer``, ``dsn``):
  ``db_password``, ``refreshToken``, ``csrftoken``, ``client_secrets``;
* consecutive words spell a secret phrase (``api key``, ``private key``,
  ``access key``, ``secret key``, ``session id``, ``session key``,
  ``auth key``, ``signing key``): ``x-api-key``, ``AWS_ACCESS_KEY_ID``;
* or the whole key is one of ``access``, ``refresh``, ``session``, ``auth``,
  ``pass``, ``key``, ``signature``, ``sig``.

So ``access_level``, ``session_count`` and ``refresh_interval`` are redacted, while
``accessibility``, ``tokenizer``, ``secretary`` and ``monkey`` (a keyword inside a
longer word) are kept. A plugin adds words or phrases with ``register(keys=(...))``;
they match under the second and third rules. Plugins can only add: nothing they
register weakens the core rule.

Keys an application knows to be harmless are declared with :func:`keep_keys`
(``keep_keys("access_level")``) or replaced as a whole with :func:`set_keep_keys`
(what the ``[alert_infra] keep_keys = [...]`` configuration setting calls). Kept keys
are exact key names, compared case-insensitively; their values are still redacted as
text (patterns and configured secrets), only the whole-value key rule is lifted.

Structures and JSON safety
--------------------------
Mappings, lists, tuples, sets and frozensets (sorted), dataclass instances (by
field) are walked; other objects become ``str(obj)`` (then redacted as text; an
object whose ``__str__`` raises becomes ``<unprintable TypeName>``); bytes become
their ``repr``; non-finite floats become the strings ``"nan"``, ``"inf"``,
``"-inf"``; integers with more than :data:`MAX_INT_DIGITS` digits become
``"<int of N digits>"`` (``str()`` of an integer over 4,300 digits raises on Python
3.11+, and no channel needs the digits); reference cycles and nesting deeper than
64 levels are cut off with a marker. The result is always JSON-serialisable with
``json.dumps(..., allow_nan=False)``, and ``redact_value`` never raises.
"""

from __future__ import annotations

import sys

# The C lock and the ABCs without importing ``threading`` and ``collections``
# (~1.5 ms together); both names are what those modules re-export.
from _collections_abc import Mapping, Sequence

# The engine: the redactor, its secret index and the built-in patterns. The names it defines that
# are part of this module's API are re-exported here.
from ._redactor import REDACTED, _Redactor, safe_str
from ._redactor import SMALL_SECRET_SET as SMALL_SECRET_SET
from ._redactor import TEXT_CACHE_MAX_LENGTH as TEXT_CACHE_MAX_LENGTH
from ._redactor import TEXT_CACHE_SIZE as TEXT_CACHE_SIZE

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from re import Pattern
    from typing import Any, Union

    PatternLike = Union[str, Pattern[str]]

__all__ = [
    "ERROR_TEXT_LIMIT",
    "MAX_INT_DIGITS",
    "MAX_PROCESS_WIDE_SECRETS",
    "REDACTED",
    "SENSITIVE_KEYWORDS",
    "describe_error",
    "is_sensitive_key",
    "keep_keys",
    "redact_and_cut",
    "redact_log_record",
    "redact_metadata",
    "redact_text",
    "redact_value",
    "redaction_generation",
    "register_redactors",
    "register_secret",
    "release_secrets",
    "safe_str",
    "set_keep_keys",
]

#: The 0.1.x keyword list, kept for code that imports it. A key with any of these as
#: one of its words is redacted (see the module docstring).
SENSITIVE_KEYWORDS = frozenset(
    {
        "password",
        "token",
        "secret",
        "api_key",
        "authorization",
        "cookie",
        "session",
        "csrf",
        "access",
        "refresh",
        "private_key",
    }
)

#: Process-wide (ownerless) secrets beyond which a warning is logged once. They are
#: all kept (a secret is never forgotten silently) and redaction cost does not grow
#: with their number; the warning points at code that registers a fresh secret per
#: call without an ``owner``. Change it with ``alert_infra.security.MAX_PROCESS_WIDE_SECRETS = n``.
MAX_PROCESS_WIDE_SECRETS = 10_000

#: Integers with more digits than this are rendered as ``"<int of N digits>"`` by
#: :func:`redact_value` (Python 3.11+ refuses ``str()`` of an int over 4,300 digits by
#: default). Change it with ``alert_infra.security.MAX_INT_DIGITS = n``; a lower
#: ``sys.set_int_max_str_digits`` limit wins.
MAX_INT_DIGITS = 1000

_MAX_DEPTH = 64

#: The process's one redactor (every function below asks it; tests reset it through this name).
_REDACTOR = _Redactor()


def is_sensitive_key(key: object) -> bool:
    """Return True when a mapping key names a secret (see the module docstring for the rule)."""
    return _REDACTOR.is_sensitive_key(key)


def redact_text(text: str) -> str:
    """Mask configured secrets and secret-shaped values in free text.

    >>> redact_text("Authorization: Bearer abc.def.ghi123")
    'Authorization: Bearer [REDACTED]'
    """
    if type(text) is not str:
        text = str.__str__(text) if isinstance(text, str) else _safe_str(text)
    return _REDACTOR.text(text)


def register_secret(value: object, *, owner: object = None) -> None:
    """Mask ``value`` (a configured token, key, password or secret URL) everywhere.

    Args:
        value: the secret. Values shorter than 4 characters are ignored (masking
            them would garble ordinary text). For a URL, its path, query and
            password are registered too, because HTTP libraries print those alone.
        owner: what the secret belongs to (a transport, a dispatcher, a state
            backend): the secret stays registered while at least one of its owners is
            alive, and is released when the last one is garbage-collected or passed to
            :func:`release_secrets`. ``None`` (or an object that cannot be weakly
            referenced) registers it for the life of the process, as in 0.1.x.

    .. versionchanged:: 0.2 ``owner`` added.
    """
    if value is None:
        return
    text = value if type(value) is str else _safe_str(value)
    if text:
        _REDACTOR.add_secret(text, owner, cap=MAX_PROCESS_WIDE_SECRETS)


def release_secrets(owner: object) -> None:
    """Stop masking the secrets registered with ``owner=owner`` (those no other live owner holds).

    Called by code that closes what registered them; dropping the owner has the same
    effect once it is garbage-collected. Process-wide secrets are never released.
    """
    _REDACTOR.release(owner)


def keep_keys(*keys: str) -> frozenset[str]:
    """Declare mapping keys harmless: their values are no longer masked as a whole.

    Exact key names, compared case-insensitively (``keep_keys("access_level")``). The
    values are still redacted as text. Returns the current keep-list. Meant for the
    application: a plugin should never weaken redaction.
    """
    return _REDACTOR.set_keep(keys, replace=False)


def set_keep_keys(keys: Iterable[str]) -> None:
    """Replace the keep-list of :func:`keep_keys` as a whole (``[alert_infra] keep_keys = [...]``).

    ``set_keep_keys(())`` empties it. Raises ``TypeError`` for an empty or non-string name.
    """
    _REDACTOR.set_keep(keys, replace=True)


def register_redactors(keys: Iterable[str] = (), patterns: Iterable[PatternLike] = ()) -> None:
    """Add sensitive key words/phrases and text patterns (the redactor hook's ``register``)."""
    _REDACTOR.add(keys=keys, patterns=patterns)


def redaction_generation() -> int:
    """A counter that changes whenever keys, patterns, kept keys or configured secrets change."""
    if _REDACTOR._dead:
        _REDACTOR.sweep()
    return _REDACTOR.generation


def redact_value(value: Any) -> Any:
    """Return a JSON-serialisable, redacted copy of ``value``; never raises.

    Mappings lose the values of sensitive keys; every string is passed through
    :func:`redact_text`; other objects are converted as the module docstring says.
    """
    return _redact(value, 0, ())


def safe_int(value: int) -> int | str:
    """``value`` as a plain int, or ``"<int of N digits>"`` past :data:`MAX_INT_DIGITS` digits."""
    number = int.__add__(value, 0)  # a plain int, whatever the subclass overrides
    bits = number.bit_length()
    limit = MAX_INT_DIGITS
    interpreter_limit = _int_str_limit()
    if 0 < interpreter_limit < limit:
        limit = interpreter_limit
    if bits <= 3 * limit:  # at most 0.91 * limit digits: always fine
        return number
    # Digits without str(): bit_length gives it to within one; a power of ten settles it.
    digits = int((bits - 1) * 0.30102999566398120) + 1
    if bits <= 200_000 and abs(number) >= 10**digits:
        digits += 1
    if digits <= limit:
        return number
    sign = "negative " if number < 0 else ""
    about = "" if bits <= 200_000 else "about "
    return f"<{sign}int of {about}{digits} digits>"


def _int_str_limit() -> int:
    getter = getattr(sys, "get_int_max_str_digits", None)  # Python 3.11+ (and security backports)
    return int(getter()) if getter is not None else 0


def _redact(value: Any, depth: int, path: tuple[int, ...]) -> Any:
    try:
        return _redact_inner(value, depth, path)
    except Exception:  # noqa: BLE001 - a hostile object (a lying __class__, a raising property) never breaks alerting
        return f"<unprintable {type(value).__name__}>"


def _redact_inner(value: Any, depth: int, path: tuple[int, ...]) -> Any:
    kind = type(value)
    if value is None or kind is bool:
        return value
    if kind is str:
        return _REDACTOR.text(value)
    if isinstance(value, int):
        return safe_int(value)
    if isinstance(value, str):
        return _REDACTOR.text(str.__str__(value))
    if isinstance(value, float):
        number = float.__mul__(value, 1.0)
        if number != number or number in (float("inf"), float("-inf")):
            return repr(number)
        return number
    if depth >= _MAX_DEPTH:
        return f"[TRUNCATED: nested deeper than {_MAX_DEPTH} levels]"
    ident = id(value)
    if ident in path:
        return "[CYCLE]"
    path = (*path, ident)
    fields = getattr(kind, "__dataclass_fields__", None)
    if fields is not None and not isinstance(value, type) and isinstance(fields, Mapping):
        value = {name: _getattr_safe(value, name) for name in fields}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        try:
            items = list(value.items())
        except Exception:  # noqa: BLE001 - a hostile mapping must not break alerting
            return f"<unreadable {kind.__name__}>"
        for key, item in items:
            name = _key_text(key)
            out[name] = REDACTED if _REDACTOR.is_sensitive_key(name) else _redact(item, depth + 1, path)
        return out
    if isinstance(value, tuple):
        return tuple(_redact(item, depth + 1, path) for item in value)
    if isinstance(value, list):
        return [_redact(item, depth + 1, path) for item in value]
    if isinstance(value, (set, frozenset)):
        items_ = [_redact(item, depth + 1, path) for item in value]
        try:
            return sorted(items_)
        except TypeError:
            return sorted(items_, key=lambda v: (type(v).__name__, _safe_str(v)))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _REDACTOR.text(_safe_str(bytes(value)))
    if isinstance(value, Sequence):
        try:
            return [_redact(item, depth + 1, path) for item in value]
        except Exception:  # noqa: BLE001
            return f"<unreadable {kind.__name__}>"
    return _REDACTOR.text(_safe_str(value))


def _getattr_safe(value: object, name: str) -> Any:
    try:
        return getattr(value, name, None)
    except Exception:  # noqa: BLE001 - a property may raise anything
        return f"<unreadable {name}>"


def _key_text(key: object) -> str:
    if type(key) is str:
        name = key
    elif isinstance(key, str):
        name = str.__str__(key)
    elif isinstance(key, int) and type(key) is not bool:
        name = str(safe_int(key))
    else:
        name = _safe_str(key)
    return _REDACTOR.text(name)


def guarded_repr(method: Callable[[Any], str]) -> Callable[[Any], str]:
    """Make a ``__repr__`` safe on a half-built instance (``TracebackException(capture_locals=True)``,
    debuggers and error reporters ``repr`` every local, ``self`` inside a failing ``__init__``
    included): if it raises, the class name with ``(?)`` is shown instead."""

    def __repr__(self: Any) -> str:
        try:
            return method(self)
        except Exception:  # noqa: BLE001 - an attribute not set yet, or anything a field's repr raises
            return f"{type(self).__name__}(?)"

    __repr__.__doc__ = method.__doc__
    return __repr__


_safe_str = safe_str  # its name before it was public: several modules import it


#: How many characters of an error's message :func:`describe_error` keeps by default.
ERROR_TEXT_LIMIT = 300


def redact_and_cut(text: object, limit: int = ERROR_TEXT_LIMIT) -> str:
    """``text`` redacted on its *full* length, then cut to ``limit`` characters (``…`` marks a cut).

    The one rule for every piece of outside text (an exception's message, a provider's answer)
    that goes into an error, an outcome or a log line. Cutting first would be unsafe: a token cut
    at 30 characters no longer matches any redaction pattern, and its first 30 characters would
    survive.
    """
    masked = redact_text(text if isinstance(text, str) else safe_str(text))
    if len(masked) <= limit:
        return masked
    return masked[: max(0, limit - 1)] + "…"


def describe_error(exc: BaseException, limit: int = ERROR_TEXT_LIMIT) -> str:
    """``"TypeName: message"`` of ``exc``, its message through :func:`redact_and_cut` (the type
    alone when the message is empty): how the core names an exception it caught."""
    message = redact_and_cut(safe_str(exc), limit).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


#: A ``logging.LogRecord``'s own attributes (what its ``__init__`` sets, ``message`` and ``asctime``
#: that formatters add, ``taskName`` of 3.12+): every other attribute came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(
    {
        "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module", "exc_info", "exc_text",
        "stack_info", "lineno", "funcName", "created", "msecs", "relativeCreated", "thread", "threadName",
        "processName", "process", "taskName", "message", "asctime",
    }
)  # fmt: skip


def redact_log_record(record: Any) -> Any:
    """Redact a ``logging.LogRecord`` in place, and return it: the one way alert-infra redacts log
    records (the HTTP stack's ``RedactingFilter`` and the command line's ``-v`` lines both use it).

    * the message: ``msg % args`` redacted; when that changes it, ``msg`` becomes the redacted
      text and ``args`` ``()`` (otherwise both stay, for handlers that group by ``msg``);
    * the exception: ``exc_info`` is formatted (as ``logging.Formatter`` does) into ``exc_text``,
      redacted, which is what every ``Formatter`` prints (``exc_info`` itself stays, for handlers
      that read the exception object); ``stack_info`` redacted;
    * every attribute given with ``extra=``: text redacted, mappings and sequences through
      :func:`redact_value`, other objects replaced by their redacted ``str()`` when it shows a secret.

    Never raises: a record it cannot read is left as it is.
    """
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record is not ours to break
        message = None
    if message is not None:
        masked = redact_text(message)
        if masked != message:
            record.msg = masked
            record.args = ()
    exc_info = getattr(record, "exc_info", None)
    exc_text = getattr(record, "exc_text", None)
    if exc_info and not exc_text and isinstance(exc_info, tuple) and exc_info[0] is not None:
        import traceback  # a record with an exception only: traceback stays out of `import alert_infra`

        try:
            exc_text = "".join(traceback.format_exception(*exc_info)).rstrip("\n")
        except Exception:  # noqa: BLE001 - an exception whose formatting fails: its type alone
            name = _safe_str(getattr(exc_info[0], "__name__", "exception"))
            exc_text = f"{name} (its traceback could not be formatted)"
    if isinstance(exc_text, str) and exc_text:
        record.exc_text = redact_text(exc_text)
    stack = getattr(record, "stack_info", None)
    if isinstance(stack, str) and stack:
        record.stack_info = redact_text(stack)
    try:
        extras = [key for key in vars(record) if key not in _RECORD_ATTRIBUTES]
    except TypeError:  # a record without __dict__
        return record
    for key in extras:
        value = record.__dict__[key]
        if value is None or isinstance(value, (bool, int, float)):
            continue
        if isinstance(value, str):
            record.__dict__[key] = redact_text(value)
        elif isinstance(value, (Mapping, list, tuple)):
            record.__dict__[key] = redact_value(value)
        else:
            text = _safe_str(value)
            masked = redact_text(text)
            if masked != text:
                record.__dict__[key] = masked
    return record


_INFINITIES = (float("inf"), float("-inf"))


def _redact_flat(metadata: dict[Any, Any]) -> dict[str, Any] | None:
    """What :func:`_redact` makes of a flat ``dict`` (text keys; text, ``None``, ``bool``, plain
    ``int`` of at most 15 digits or finite ``float`` values), the common metadata, without its
    recursion (every alert's metadata goes through here at construction, and again into a queued
    message); ``None`` for anything else, which then takes the general path."""
    text = _REDACTOR.text
    sensitive = _REDACTOR.is_sensitive_key
    out: dict[str, Any] = {}
    for key, item in list(metadata.items()):
        if type(key) is not str:
            return None
        name = text(key)
        kind = type(item)
        if kind is str:
            out[name] = REDACTED if sensitive(name) else text(item)
            continue
        plain = item is None or kind is bool or (kind is int and -(10**15) < item < 10**15)
        if not plain and not (kind is float and item == item and item not in _INFINITIES):
            return None
        out[name] = REDACTED if sensitive(name) else item
    return out


def redact_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Redact a metadata mapping and return a new dictionary (0.1.x API).

    Raises:
        TypeError: ``metadata`` is not a mapping (as in 0.1.x).
    """
    if metadata is None:
        return {}
    if type(metadata) is dict:
        flat = _redact_flat(metadata)
        if flat is not None:
            return flat
    if not isinstance(metadata, Mapping):
        raise TypeError("metadata must be a mapping")
    result = _redact(metadata, 0, ())
    if not isinstance(result, dict):
        return {"metadata": result}
    return result
