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

import re
import sys

# The C lock and the ABCs without importing ``threading`` and ``collections``
# (~1.5 ms together); both names are what those modules re-export.
from _collections_abc import Mapping, Sequence
from _thread import allocate_lock
from _weakref import ref as _weak_ref

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

REDACTED = "[REDACTED]"

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

#: Redacted forms of short texts (up to :data:`TEXT_CACHE_MAX_LENGTH` characters: titles,
#: sources, tags, labels, metadata keys) remembered until the rules change; the cache is
#: dropped whole when it holds this many entries or when :func:`redaction_generation` moves.
TEXT_CACHE_SIZE = 4096
TEXT_CACHE_MAX_LENGTH = 256

#: Up to this many secrets per length class are searched with ``str.find`` (fastest
#: for a handful); beyond it, the k-gram index is used (cost independent of the count).
SMALL_SECRET_SET = 16

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
# The 0.1.x keywords that are one word: a key with one of these as a word is sensitive.
_KEYWORD_WORDS = frozenset(
    {"password", "token", "secret", "authorization", "cookie", "session", "csrf", "access", "refresh"}
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
_KEY_CACHE_SIZE = 4096

# Starts only at the first capital of a run (a look-behind), so "AAAA…" is linear.
_CAMEL_1 = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL_2 = re.compile(r"(?<![A-Z])([A-Z]+)([A-Z][a-z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")

# Built-in value patterns: (name, trigger substrings, regex). A pattern runs only
# when one of its triggers occurs in the lower-cased text, so ordinary text costs
# a few substring searches instead of a many-way regex alternation at every
# position. A group named ``keep`` is kept in front of the mask ("Bearer [REDACTED]").
#
# Linearity (tested in tests/test_redaction_linear.py): a failed attempt either scans
# a bounded number of characters (a key shape shorter than its minimum length fails
# within that length) or one run that no other attempt can scan again (the run cannot
# cross the literal that starts the next attempt: "://" holds a "/", "SG." a "."). The
# JWT pattern starts only at the start of a run of its characters (a look-behind, not
# ``\b``: "eyJ-eyJ-…" gave 20,000 starts that each scanned to the end of the run).
_BUILTIN_PATTERNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # PEM private keys (multi-line). The label is bounded (real ones: "RSA", "EC", "ENCRYPTED").
    (
        "pem",
        ("-----begin",),
        r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|\Z)",
    ),
    # Slack incoming-webhook / workflow URLs: the whole URL is the credential.
    (
        "slack_webhook",
        ("hooks.slack",),
        r"(?P<keep>https?://hooks\.slack(?:-gov)?\.com/)(?:services|workflows|triggers)/[A-Za-z0-9_/\-]+",
    ),
    # Telegram bot tokens, bare or inside an API path (/bot<token>/...).
    ("telegram", (":",), r"(?<![A-Za-z0-9])(?P<keep>bot)?[0-9]{5,16}:[A-Za-z0-9_\-]{30,}"),
    # Passwords in URLs: scheme://user:password@host. Anchored on "://" (not on the
    # scheme, whose letters made "aaaa…://" quadratic); neither run can cross a "/",
    # so no two attempts scan the same characters.
    ("url_userinfo", ("://",), r"(?P<keep>://[^\s:/@]*:)[^\s@/]+(?=@)"),
    # Token-bearing query parameters.
    (
        "url_query",
        ("=",),
        r"(?i)(?P<keep>[?&;](?:access_token|refresh_token|id_token|token|api_key|apikey|api-key|key|"
        r"secret|client_secret|password|passwd|pwd|auth|sig|signature|x-amz-signature|x-goog-signature)=)[^&#\s]+",
    ),
    # Authorization header values.
    ("bearer", ("bearer",), r"(?i)(?P<keep>\bbearer[ \t]{1,16})[A-Za-z0-9\-._~+/]{6,}=*"),
    ("basic", ("basic",), r"(?i)(?P<keep>\bbasic[ \t]{1,16})[A-Za-z0-9+/]{6,}={0,2}"),
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
    (
        "jwt",
        ("eyj",),
        r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}",
    ),
    # password=..., "token": "...", api_key: ... in free text (logs, exception messages).
    # The blanks around the separator are bounded: "password" + 80k spaces is not an assignment.
    (
        "assignment",
        ("pass", "pwd", "secret", "token", "key"),
        r"(?i)(?P<keep>\b(?:password|passwd|pwd|passphrase|secret|client_secret|token|access_token|"
        r"refresh_token|api[_-]?key|auth[_-]?token)\b[\"']?[ \t]{0,16}[:=][ \t]{0,16}[\"']?)[^\s\"',;&]{2,}",
    ),
)

# Length classes of configured secrets: (minimum length, slice length k, probe stride).
# Every occurrence of a secret of length >= L holds, at one of ``stride`` consecutive
# offsets, a slice that starts at a multiple of ``stride`` in the text, provided
# L - k + 1 >= stride (so the slices of a window fit in the shortest secret). Memory is
# ``stride`` index entries per secret; the text is probed once every ``stride`` characters.
_SECRET_CLASSES = ((32, 8, 24), (16, 8, 8), (8, 4, 4), (_MIN_SECRET_LENGTH, 4, 1))
_WINDOW_CHOICES = 8  # windows tried per secret (from its tail, a third of a stride apart), to keep buckets small


class _SecretClass:
    """The configured secrets of one length class and their k-gram index.

    The probe slices of a text are cut by one ``findall`` (in C), and one
    ``isdisjoint`` against the index (in C) settles the common case, no secret in the
    text, without a Python-level loop over the text.
    """

    __slots__ = ("min_len", "k", "stride", "values", "small", "index", "entries", "probe", "_probe_source", "_peak")

    def __init__(self, min_len: int, k: int, stride: int) -> None:
        self.min_len = min_len
        self.k = k
        self.stride = stride
        self.values: dict[str, int] = {}  # secret -> first offset of its indexed window
        self.small: tuple[str, ...] = ()  # the values while there are few of them
        # slice -> the secret (or the set of secrets) with that slice in their indexed window.
        # Sets are changed in place under the registry lock; a reader copies one with
        # tuple() (a single C call under the GIL) before it iterates.
        self.index: dict[str, str | set[str]] = {}
        self.entries = 0
        self._peak = 0  # largest index size since the last rebuild (dicts never shrink by themselves)
        # Compiled on first use: compiling four patterns at import would cost ~1 ms.
        self.probe: Pattern[str] | None = None
        if stride == 1:
            self._probe_source = f"(?s)(?=(.{{{k}}}))"  # every position
        elif stride == k:
            self._probe_source = f"(?s).{{{k}}}"
        else:
            self._probe_source = f"(?s)(.{{{k}}}).{{0,{stride - k}}}"

    def _window(self, secret: str, j0: int) -> set[str]:
        k = self.k
        return {secret[j : j + k] for j in range(j0, j0 + self.stride)}

    def add(self, secret: str) -> None:
        index = self.index
        # Choose, among a few windows from the tail (the random part of URLs and tokens),
        # the one whose buckets are the least crowded.
        best, best_cost = 0, -1
        start = len(secret) - self.k - self.stride + 1
        step = max(1, self.stride // 3)
        for n in range(_WINDOW_CHOICES):
            j0 = start - n * step
            if j0 < 0:
                break
            cost = 0
            for gram in self._window(secret, j0):
                bucket = index.get(gram)
                cost += 0 if bucket is None else (1 if isinstance(bucket, str) else len(bucket))
            if best_cost < 0 or cost < best_cost:
                best, best_cost = j0, cost
                if cost == 0:
                    break
        grams = self._window(secret, best)
        for gram in grams:
            bucket = index.get(gram)
            if bucket is None:
                index[gram] = secret
            elif isinstance(bucket, str):
                index[gram] = {bucket, secret}
            else:
                bucket.add(secret)
        self.entries += len(grams)
        self._peak = max(self._peak, len(index))
        self.values[secret] = best
        self.small = tuple(self.values) if len(self.values) <= SMALL_SECRET_SET else ()

    def remove(self, secret: str) -> None:
        grams = self._window(secret, self.values.pop(secret))
        index = self.index
        for gram in grams:
            bucket = index.get(gram)
            if bucket is None or bucket == secret:
                index.pop(gram, None)
            elif not isinstance(bucket, str):
                bucket.discard(secret)
                if not bucket:
                    index.pop(gram, None)
        self.entries -= len(grams)
        if self._peak > 1024 and len(index) * 4 < self._peak:
            # Most secrets were released: give the memory of the grown table back.
            self.index = dict(index)  # readers keep the old table until they finish
            self._peak = len(index)
        self.small = tuple(self.values) if len(self.values) <= SMALL_SECRET_SET else ()

    def find(self, text: str, spans: list[tuple[int, int]]) -> None:
        values = self.values
        if not values:
            return
        small = self.small  # an immutable snapshot: no dict is iterated while a writer changes it
        if small:
            for secret in small:
                i = text.find(secret)
                while i >= 0:
                    spans.append((i, i + len(secret)))
                    i = text.find(secret, i + 1)
            return
        index = self.index
        probe = self.probe
        if probe is None:
            probe = self.probe = re.compile(self._probe_source)
        grams = probe.findall(text)
        if index.keys().isdisjoint(grams):
            return
        stride = self.stride
        for n, gram in enumerate(grams):
            bucket = index.get(gram)
            if bucket is None:
                continue
            p = n * stride
            for secret in (bucket,) if isinstance(bucket, str) else _snapshot(bucket):
                j = secret.find(gram)
                while j >= 0:
                    t = p - j
                    if t >= 0 and text.startswith(secret, t):
                        spans.append((t, t + len(secret)))
                    j = secret.find(gram, j + 1)


def _snapshot(bucket: set[str]) -> tuple[str, ...]:
    # tuple(set) is one C call; only a collector run inside it could let a writer in.
    for _ in range(8):
        try:
            return tuple(bucket)
        except RuntimeError:  # "Set changed size during iteration": take it again
            continue
    return tuple(sorted(bucket))  # pragma: no cover - practically unreachable


class _Owner:
    __slots__ = ("ref", "values")

    def __init__(self, ref: Any) -> None:
        self.ref = ref
        self.values: set[str] = set()


class _Redactor:
    """Process-wide redaction state: extra keys, patterns, kept keys and configured secrets."""

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self.generation = 0
        self._extra_words: tuple[str, ...] = ()
        self._extra_phrases: tuple[tuple[str, ...], ...] = ()
        self._extra_patterns: tuple[Pattern[str], ...] = ()
        self._keep: frozenset[str] = frozenset()
        self._builtin_rx: tuple[tuple[tuple[str, ...], Pattern[str], bool], ...] | None = None
        self._key_cache: dict[str, bool] = {}
        self._fork_hooked = False
        self._warned_cap = False
        # (generation, {text: redacted}): replaced, never cleared in place, so a result
        # computed under an older generation can only land in a dict nobody reads.
        self._cache: tuple[int, dict[str, str]] = (-1, {})
        self._init_secrets()

    def _init_secrets(self) -> None:
        self._classes = tuple(_SecretClass(*spec) for spec in _SECRET_CLASSES)
        self._live: tuple[_SecretClass, ...] = ()  # the classes that hold secrets
        self._shortest = 0  # texts shorter than the shortest live secret skip the secret step
        self._active = 0  # distinct secrets currently masked
        self._process_wide: set[str] = set()
        self._owned: dict[str, int] = {}  # secret -> number of live owners holding it
        self._owners: dict[int, _Owner] = {}  # id(owner) -> its record
        # Keys of collected owners, appended by weakref callbacks. A callback never
        # takes a lock (the collector may run while this thread holds one); the
        # records are released at the next registration, release or redaction.
        self._dead: list[tuple[int, Any]] = []

    def _after_fork(self) -> None:
        self._lock = allocate_lock()  # another thread of the parent may have held it

    def _hook_fork(self) -> None:
        if not self._fork_hooked:
            self._fork_hooked = True
            from ._lifecycle import on_fork_in_child

            on_fork_in_child(self, _Redactor._after_fork)

    # -- configuration -------------------------------------------------------------
    def add(self, keys: Iterable[str] = (), patterns: Iterable[PatternLike] = ()) -> None:
        words = list(self._extra_words)
        phrases = list(self._extra_phrases)
        for key in keys:
            if not isinstance(key, str) or not key.strip():
                raise TypeError(f"redactor key must be a non-empty string, got {type(key).__name__}")
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

    def set_keep(self, keys: Iterable[str], *, replace: bool) -> frozenset[str]:
        if isinstance(keys, str):
            keys = (keys,)
        names = set()
        for key in keys:
            if not isinstance(key, str) or not key.strip():
                raise TypeError(f"kept key must be a non-empty string, got {type(key).__name__}")
            names.add(key.strip().lower())
        with self._lock:
            self._keep = frozenset(names) if replace else self._keep | names
            self._key_cache = {}
            self.generation += 1
            return self._keep

    # -- configured secrets ----------------------------------------------------------
    def add_secret(self, value: str, owner: object = None) -> None:
        candidates = {value}
        if "://" in value:
            candidates.update(_url_fragments(value))
        candidates = {c for c in candidates if len(c) >= _MIN_SECRET_LENGTH}
        if not candidates:
            return
        if owner is not None:
            try:
                _weak_ref(owner)
            except TypeError:  # not weak-referenceable: process-wide, as documented
                owner = None
        self._hook_fork()
        warn = False
        with self._lock:
            self._sweep_locked()
            changed = False
            if owner is None:
                for c in candidates:
                    if c not in self._process_wide:
                        self._process_wide.add(c)
                        changed |= self._activate(c)
                if len(self._process_wide) > MAX_PROCESS_WIDE_SECRETS and not self._warned_cap:
                    self._warned_cap = warn = True
            else:
                key = id(owner)
                record = self._owners.get(key)
                if record is not None and record.ref() is not owner:
                    # The previous holder of this id was collected; its callback has not been swept yet.
                    changed |= self._release_record_locked(key, record)
                    record = None
                if record is None:
                    dead = self._dead

                    def collected(r: object, key: int = key, dead: list[tuple[int, Any]] = dead) -> None:
                        dead.append((key, r))

                    record = self._owners[key] = _Owner(_weak_ref(owner, collected))
                for c in candidates:
                    if c not in record.values:
                        record.values.add(c)
                        count = self._owned.get(c, 0)
                        self._owned[c] = count + 1
                        if count == 0:
                            changed |= self._activate(c)
            if changed:
                self.generation += 1
        if warn:
            import logging

            logging.getLogger("alert_infra.security").warning(
                "more than %d process-wide secrets are registered; all are kept. Pass owner= to "
                "register_secret() so that secrets are released with what registered them.",
                MAX_PROCESS_WIDE_SECRETS,
            )

    def _class_for(self, secret: str) -> _SecretClass:
        for cls in self._classes:
            if len(secret) >= cls.min_len:
                return cls
        raise AssertionError("secret too short")  # pragma: no cover - filtered before

    def _activate(self, secret: str) -> bool:
        cls = self._class_for(secret)
        if secret in cls.values:
            return False
        cls.add(secret)
        self._active += 1
        if len(cls.values) == 1:
            self._refresh_live()
        return True

    def _refresh_live(self) -> None:
        live = tuple(cls for cls in self._classes if cls.values)
        self._shortest = live[-1].min_len if live else 0
        self._live = live

    def _deactivate(self, secret: str) -> bool:
        if secret in self._process_wide or self._owned.get(secret):
            return False
        cls = self._class_for(secret)
        if secret not in cls.values:
            return False
        cls.remove(secret)
        self._active -= 1
        if not cls.values:
            self._refresh_live()
        return True

    def _release_record_locked(self, key: int, record: _Owner) -> bool:
        if self._owners.get(key) is record:
            del self._owners[key]
        changed = False
        for c in record.values:
            count = self._owned.get(c, 0) - 1
            if count > 0:
                self._owned[c] = count
            else:
                self._owned.pop(c, None)
                changed |= self._deactivate(c)
        record.values = set()
        return changed

    def _sweep_locked(self) -> bool:
        changed = False
        dead = self._dead
        while dead:
            key, r = dead.pop()
            record = self._owners.get(key)
            if record is not None and record.ref is r:
                changed |= self._release_record_locked(key, record)
        return changed

    def sweep(self) -> None:
        with self._lock:
            if self._sweep_locked():
                self.generation += 1

    def release(self, owner: object) -> None:
        with self._lock:
            changed = self._sweep_locked()
            record = self._owners.get(id(owner))
            if record is not None and record.ref() is owner:
                changed |= self._release_record_locked(id(owner), record)
            if changed:
                self.generation += 1

    def secret_stats(self) -> dict[str, int]:
        """Sizes of the secret registry (for tests and the long-run bench)."""
        self.sweep()
        return {
            "active": self._active,
            "process_wide": len(self._process_wide),
            "owned": len(self._owned),
            "owners": len(self._owners),
            "index_entries": sum(cls.entries for cls in self._classes),
            "index_buckets": sum(len(cls.index) for cls in self._classes),
        }

    def reset(self) -> None:
        """Forget plugin keys, patterns, kept keys and configured secrets (for tests)."""
        with self._lock:
            self._extra_words = ()
            self._extra_phrases = ()
            self._extra_patterns = ()
            self._keep = frozenset()
            self._init_secrets()
            self._key_cache = {}
            self._warned_cap = False
            self.generation += 1

    # -- keys --------------------------------------------------------------------------
    def is_sensitive_key(self, key: object) -> bool:
        text = key if type(key) is str else _safe_str(key)
        cached = self._key_cache.get(text)
        if cached is not None:
            return cached
        result = self._classify_key(text)
        if len(self._key_cache) < _KEY_CACHE_SIZE:
            self._key_cache[text] = result
        return result

    def _classify_key(self, key: str) -> bool:
        if self._keep and key.strip().lower() in self._keep:
            return False
        words = _split_words(key)
        if not words:
            return False
        if len(words) == 1 and words[0] in _WHOLE_KEYS:
            return True
        secret_words = _SECRET_WORDS + self._extra_words
        for word in words:
            stem = word[:-1] if len(word) > 3 and word.endswith("s") else word
            if word in _KEYWORD_WORDS or stem in _KEYWORD_WORDS:
                return True
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

    def secrets(self, text: str) -> str:
        if self._dead:
            self.sweep()
        live = self._live
        if not live or len(text) < self._shortest:
            return text
        spans: list[tuple[int, int]] = []
        for cls in live:
            cls.find(text, spans)
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        last = 0
        cur_start, cur_end = spans[0]
        for start, end in spans[1:]:
            if start < cur_end:
                if end > cur_end:
                    cur_end = end
                continue
            out.append(text[last:cur_start])
            out.append(REDACTED)
            last = cur_end
            cur_start, cur_end = start, end
        out.append(text[last:cur_start])
        out.append(REDACTED)
        out.append(text[cur_end:])
        return "".join(out)

    def text(self, text: str) -> str:
        if not text:
            return text
        if len(text) > TEXT_CACHE_MAX_LENGTH:
            return self._text(text)
        if self._dead:
            self.sweep()
        generation, cache = self._cache
        if generation != self.generation or len(cache) >= TEXT_CACHE_SIZE:
            generation = self.generation
            cache = {}
            self._cache = (generation, cache)
        out = cache.get(text)
        if out is None:
            out = cache[text] = self._text(text)
        return out

    def _text(self, text: str) -> str:
        # Configured secrets first (one pass; overlapping matches merge, so a URL beats its path).
        text = self.secrets(text)
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
        password = parts.password
    except ValueError:
        return fragments
    path_query = parts.path + (("?" + parts.query) if parts.query else "")
    if len(parts.path.strip("/")) >= 8:
        fragments.add(path_query)
        fragments.add(parts.path)
    if parts.query:
        fragments.add(parts.query)
    if password:
        fragments.add(password)
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
        _REDACTOR.add_secret(text, owner)


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


def safe_str(value: object) -> str:
    """``str(value)``, or ``<unprintable TypeName>`` when that raises (never raises itself)."""
    try:
        text = str(value)
        return text if type(text) is str else str.__str__(text)
    except Exception:  # noqa: BLE001 - str() of a user object may raise anything
        return f"<unprintable {type(value).__name__}>"


_safe_str = safe_str  # its name before it was public: several modules (celery.py among them) import it


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
    if not isinstance(result, dict):
        return {"metadata": result}
    return result
