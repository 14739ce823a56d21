"""Redaction: keep secrets out of alerts, logs, results and audit records.

Three layers, applied in this order to every string that leaves the process:

1. **Configured secrets.** Every value of a transport's ``secret_fields``
   (webhook URLs, bot tokens, API keys, passwords) is registered with
   :func:`register_secret` when the transport is built, and any occurrence of it
   (or of the path of a secret URL, which is what HTTP libraries print) is
   replaced by ``[REDACTED]``.
2. **Value patterns.** Secrets that hide in free text are masked wherever they
   appear: ``Bearer``/``Basic`` credentials, passwords in URLs
   (``https://user:pw@host``), token-bearing query parameters, Slack webhook
   URLs, Telegram bot tokens, Slack/GitHub/AWS/Stripe/SendGrid/Resend/Google
   key shapes, JWTs, PEM private keys and ``password=…``-style assignments.
   Plugins add patterns with the ``alert_infra_register_redactors`` hook.
3. **Sensitive keys.** In mappings (alert metadata), the value of a key that
   names a secret is replaced as a whole, whatever it is.

The key rule (0.1.x matched substrings, so ``accessibility`` and
``access_count`` were redacted): a key is split into words at ``_``, ``-``,
``.``, spaces and camelCase boundaries, compared case-insensitively, and is
sensitive when

* one word *is* or *ends with* a secret word (``password``, ``passwd``,
  ``pwd``, ``passphrase``, ``secret``, ``token``, ``apikey``,
  ``authorization``, ``cookie``, ``csrf``, ``xsrf``, ``credential``,
  ``privatekey``, ``sessionid``, ``jwt``, ``bearer``, ``dsn``; a trailing
  plural ``s`` is ignored): ``db_password``, ``refreshToken``, ``csrftoken``,
  ``X-Api-Key``'s ``apikey`` form, ``client_secrets``;
* consecutive words spell a secret phrase (``api key``, ``private key``,
  ``access key``, ``secret key``, ``session id``, ``session key``,
  ``auth key``, ``signing key``): ``x-api-key``, ``AWS_ACCESS_KEY_ID``;
* or the whole key is one of ``access``, ``refresh``, ``session``, ``auth``,
  ``pass``, ``key``, ``signature``, ``sig`` (JWT pairs, cookie jars and
  signed-URL parts are sent under such bare names).

So ``accessibility``, ``access_level``, ``session_count``, ``tokenizer`` and
``monkey`` are kept, while ``access`` and ``session_id`` are redacted. A plugin
adds words or phrases with ``register(keys=(...))``; they match under the same
rule. The 0.1.x keywords (:data:`SENSITIVE_KEYWORDS`) are all still covered.

Structures: mappings, lists, tuples, sets and frozensets (sorted), dataclass
instances (by field) are walked; other objects become ``str(obj)`` (then
redacted as text); non-finite floats become strings; reference cycles and
nesting deeper than 64 levels are cut off with a marker. The result is always
JSON-serialisable with ``json.dumps(..., allow_nan=False)``.
"""

from __future__ import annotations

import re

# The C lock and the ABCs without importing ``threading`` and ``collections``
# (~1.5 ms together); both names are what those modules re-export.
from _collections_abc import Mapping, Sequence
from _thread import allocate_lock

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Iterable
    from re import Pattern
    from typing import Any, Union

    PatternLike = Union[str, Pattern[str]]

__all__ = [
    "REDACTED",
    "SENSITIVE_KEYWORDS",
    "is_sensitive_key",
    "redact_metadata",
    "redact_text",
    "redact_value",
    "register_redactors",
    "register_secret",
]

REDACTED = "[REDACTED]"

#: The 0.1.x keyword list, kept for code that imports it. Every key that
#: contained one of these as a word is still redacted (see the module docstring
#: for the rule that replaced substring matching).
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

_SECRET_WORDS = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "csrf",
    "xsrf",
    "credential",
    "privatekey",
    "sessionid",
    "jwt",
    "bearer",
    "dsn",
)
_SECRET_PHRASES = (
    ("api", "key"),
    ("private", "key"),
    ("access", "key"),
    ("secret", "key"),
    ("session", "id"),
    ("session", "key"),
    ("auth", "key"),
    ("signing", "key"),
)
_WHOLE_KEYS = frozenset({"access", "refresh", "session", "auth", "pass", "key", "signature", "sig"})

_MAX_DEPTH = 64
_MIN_SECRET_LENGTH = 4

_CAMEL_1 = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL_2 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")

# Built-in value patterns: (name, trigger substrings, regex). A pattern runs only
# when one of its triggers occurs in the lower-cased text, so ordinary text costs
# a few substring searches instead of a many-way regex alternation at every
# position. A group named ``keep`` is kept in front of the mask ("Bearer [REDACTED]").
_BUILTIN_PATTERNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # PEM private keys (multi-line).
    (
        "pem",
        ("-----begin",),
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    ),
    # Slack incoming-webhook / workflow URLs: the whole URL is the credential.
    (
        "slack_webhook",
        ("hooks.slack",),
        r"(?P<keep>https?://hooks\.slack(?:-gov)?\.com/)(?:services|workflows|triggers)/[A-Za-z0-9_/\-]+",
    ),
    # Telegram bot tokens, bare or inside an API path (/bot<token>/...).
    ("telegram", (":",), r"(?<![A-Za-z0-9])(?P<keep>bot)?[0-9]{5,16}:[A-Za-z0-9_\-]{30,}"),
    # Passwords in URLs: scheme://user:password@host
    ("url_userinfo", ("://",), r"(?P<keep>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)[^\s@/]+(?=@)"),
    # Token-bearing query parameters.
    (
        "url_query",
        ("=",),
        r"(?i)(?P<keep>[?&;](?:access_token|refresh_token|id_token|token|api_key|apikey|api-key|key|"
        r"secret|client_secret|password|passwd|pwd|auth|sig|signature|x-amz-signature|x-goog-signature)=)[^&#\s]+",
    ),
    # Authorization header values.
    ("bearer", ("bearer",), r"(?i)(?P<keep>\bbearer\s+)[A-Za-z0-9\-._~+/]{6,}=*"),
    ("basic", ("basic",), r"(?i)(?P<keep>\bbasic\s+)[A-Za-z0-9+/]{6,}={0,2}"),
    # Provider key shapes.
    ("slack_token", ("xox", "xapp-"), r"\bx(?:ox[abposrc]|app)-[A-Za-z0-9\-]{10,}"),
    (
        "github",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
    ),
    ("aws", ("akia", "asia"), r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("stripe", ("_live_", "_test_"), r"\b(?:sk|rk|pk|whsec)_(?:live|test)_[A-Za-z0-9]{10,}"),
    ("sendgrid", ("sg.",), r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}"),
    ("resend", ("re_",), r"\bre_[A-Za-z0-9]{6,}_[A-Za-z0-9]{12,}"),
    ("openai", ("sk-",), r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}"),
    ("google", ("aiza",), r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("jwt", ("eyj",), r"\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}"),
    # password=..., "token": "...", api_key: ... in free text (logs, exception messages).
    (
        "assignment",
        ("pass", "pwd", "secret", "token", "key"),
        r"(?i)(?P<keep>\b(?:password|passwd|pwd|passphrase|secret|client_secret|token|access_token|"
        r"refresh_token|api[_-]?key|auth[_-]?token)\b[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]{2,}",
    ),
)


class _Redactor:
    """Process-wide redaction state: extra keys, patterns and configured secrets."""

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self.generation = 0
        self._extra_words: tuple[str, ...] = ()
        self._extra_phrases: tuple[tuple[str, ...], ...] = ()
        self._extra_patterns: tuple[Pattern[str], ...] = ()
        self._secrets: set[str] = set()
        self._secrets_ordered: tuple[str, ...] = ()
        self._builtin_rx: tuple[tuple[tuple[str, ...], Pattern[str], bool], ...] | None = None
        self._key_cache: dict[str, bool] = {}

    # -- configuration -------------------------------------------------------------
    def add(self, keys: Iterable[str] = (), patterns: Iterable[PatternLike] = ()) -> None:
        words = list(self._extra_words)
        phrases = list(self._extra_phrases)
        for key in keys:
            if not isinstance(key, str) or not key.strip():
                raise TypeError(f"redactor key must be a non-empty string, got {key!r}")
            parts = tuple(_split_words(key))
            if len(parts) == 1:
                words.append(parts[0])
            elif parts:
                phrases.append(parts)
        compiled = list(self._extra_patterns)
        for pattern in patterns:
            if isinstance(pattern, str):
                try:
                    compiled.append(re.compile(pattern))
                except re.error as exc:
                    raise ValueError(f"invalid redaction pattern {pattern!r}: {exc}") from None
            elif isinstance(pattern, re.Pattern):
                compiled.append(pattern)
            else:
                raise TypeError(f"redaction pattern must be a str or re.Pattern, got {type(pattern).__name__}")
        with self._lock:
            self._extra_words = tuple(words)
            self._extra_phrases = tuple(phrases)
            self._extra_patterns = tuple(compiled)
            self._key_cache = {}
            self.generation += 1

    def add_secret(self, value: str) -> None:
        candidates = {value}
        if "://" in value:
            candidates.update(_url_fragments(value))
        new = {c for c in candidates if len(c) >= _MIN_SECRET_LENGTH and c not in self._secrets}
        if not new:
            return
        with self._lock:
            self._secrets |= new
            self._secrets_ordered = tuple(sorted(self._secrets, key=len, reverse=True))
            self.generation += 1

    def reset(self) -> None:
        """Forget plugin keys, patterns and configured secrets (for tests)."""
        with self._lock:
            self._extra_words = ()
            self._extra_phrases = ()
            self._extra_patterns = ()
            self._secrets = set()
            self._secrets_ordered = ()
            self._key_cache = {}
            self.generation += 1

    # -- keys --------------------------------------------------------------------------
    def is_sensitive_key(self, key: object) -> bool:
        text = key if isinstance(key, str) else str(key)
        cached = self._key_cache.get(text)
        if cached is not None:
            return cached
        result = self._classify_key(text)
        if len(self._key_cache) < 4096:
            self._key_cache[text] = result
        return result

    def _classify_key(self, key: str) -> bool:
        words = _split_words(key)
        if not words:
            return False
        if len(words) == 1 and words[0] in _WHOLE_KEYS:
            return True
        secret_words = _SECRET_WORDS + self._extra_words
        for word in words:
            stem = word[:-1] if len(word) > 3 and word.endswith("s") else word
            for secret in secret_words:
                if stem.endswith(secret) or word.endswith(secret):
                    return True
        for phrase in _SECRET_PHRASES + self._extra_phrases:
            n = len(phrase)
            for i in range(len(words) - n + 1):
                if tuple(words[i : i + n]) == phrase:
                    return True
        return False

    # -- text --------------------------------------------------------------------------
    def _builtin(self) -> tuple[tuple[tuple[str, ...], Pattern[str], bool], ...]:
        compiled = self._builtin_rx
        if compiled is None:
            compiled = self._builtin_rx = tuple(
                (triggers, re.compile(pattern), "(?P<keep>" in pattern) for _, triggers, pattern in _BUILTIN_PATTERNS
            )
        return compiled

    def text(self, text: str) -> str:
        if not text:
            return text
        # Configured secrets first (exact values; longest first so a URL beats its path).
        for secret in self._secrets_ordered:
            if secret in text:
                text = text.replace(secret, REDACTED)
        low = text.lower()
        for triggers, pattern, keep in self._builtin():
            for trigger in triggers:
                if trigger in low:
                    text = pattern.sub(_keep_and_mask if keep else REDACTED, text)
                    low = text.lower()
                    break
        for extra in self._extra_patterns:
            text = extra.sub(REDACTED, text)
        return text


def _keep_and_mask(match: re.Match[str]) -> str:
    return (match.group("keep") or "") + REDACTED


def _split_words(key: str) -> list[str]:
    key = _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", key))
    return [w for w in _WORD_SPLIT.split(key.lower()) if w]


def _url_fragments(value: str) -> set[str]:
    """The parts of a secret URL that HTTP libraries print on their own."""
    from urllib.parse import urlsplit

    fragments: set[str] = set()
    try:
        parts = urlsplit(value)
    except ValueError:
        return fragments
    path_query = parts.path + (("?" + parts.query) if parts.query else "")
    if len(parts.path.strip("/")) >= 8:
        fragments.add(path_query)
        fragments.add(parts.path)
    if parts.query:
        fragments.add(parts.query)
    if parts.password:
        fragments.add(parts.password)
    return fragments


_REDACTOR = _Redactor()


def is_sensitive_key(key: object) -> bool:
    """Return True when a mapping key names a secret (see the module docstring for the rule)."""
    return _REDACTOR.is_sensitive_key(key)


def redact_text(text: str) -> str:
    """Mask configured secrets and secret-shaped values in free text.

    >>> redact_text("Authorization: Bearer abc.def.ghi123")
    'Authorization: Bearer [REDACTED]'
    """
    if not isinstance(text, str):
        text = str(text)
    return _REDACTOR.text(text)


def register_secret(value: object) -> None:
    """Mask ``value`` (a configured token, key, password or secret URL) everywhere from now on.

    Called for every value of a transport's ``secret_fields`` when a channel is
    built. Values shorter than 4 characters are ignored (masking them would
    garble ordinary text). For a URL, its path and query are registered too,
    because HTTP libraries print those without the host.
    """
    if value is None:
        return
    text = value if isinstance(value, str) else str(value)
    if text:
        _REDACTOR.add_secret(text)


def register_redactors(keys: Iterable[str] = (), patterns: Iterable[PatternLike] = ()) -> None:
    """Add sensitive key words/phrases and text patterns (the redactor hook's ``register``)."""
    _REDACTOR.add(keys=keys, patterns=patterns)


def redaction_generation() -> int:
    """A counter that changes whenever keys, patterns or configured secrets change."""
    return _REDACTOR.generation


def redact_value(value: Any) -> Any:
    """Return a JSON-serialisable, redacted copy of ``value``.

    Mappings lose the values of sensitive keys; every string is passed through
    :func:`redact_text`; other objects are converted as the module docstring says.
    """
    return _redact(value, 0, ())


def _redact(value: Any, depth: int, path: tuple[int, ...]) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value if type(value) in (bool, int) or value is None else int(value)
    if isinstance(value, str):
        return _REDACTOR.text(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return float(value)
    if depth >= _MAX_DEPTH:
        return f"[TRUNCATED: nested deeper than {_MAX_DEPTH} levels]"
    ident = id(value)
    if ident in path:
        return "[CYCLE]"
    path = (*path, ident)
    fields = getattr(type(value), "__dataclass_fields__", None)
    if fields is not None and not isinstance(value, type):
        value = {name: getattr(value, name, None) for name in fields}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        try:
            items = list(value.items())
        except Exception:  # noqa: BLE001 - a hostile mapping must not break alerting
            return f"<unreadable {type(value).__name__}>"
        for key, item in items:
            name = key if isinstance(key, str) else _safe_str(key)
            name = _REDACTOR.text(name)
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
            return f"<unreadable {type(value).__name__}>"
    return _REDACTOR.text(_safe_str(value))


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - str() of a user object may raise anything
        return f"<unprintable {type(value).__name__}>"


def redact_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Redact a metadata mapping and return a new dictionary (0.1.x API).

    Raises:
        TypeError: ``metadata`` is not a mapping (as in 0.1.x).
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError("metadata must be a mapping")
    result = _redact(metadata, 0, ())
    assert isinstance(result, dict)
    return result
