"""The engine of :mod:`alert_infra.security`: the redactor, its secret index and the built-in patterns.

Private: code uses :mod:`alert_infra.security`, which owns the process's one redactor
(``security._REDACTOR``), re-exports the names defined here that are part of its API
(:data:`REDACTED`, :func:`safe_str`, the cache and index constants) and documents the rules
(the three layers, the key rule, the cost of each step).

What lives here:

* :class:`_Redactor`: plugin keys and patterns, kept keys, configured secrets and their owners
  (weak references; collected owners are swept without taking a lock in the collector), the
  key cache and the short-text cache, all replaced rather than changed in place under readers.
* :class:`_SecretClass`: one length class of configured secrets and its k-gram index, so the cost
  of finding them in a text does not depend on how many are registered.
* The built-in value patterns (:data:`_BUILTIN_PATTERNS`, each linear in the text's length and run
  only when one of its trigger substrings occurs) and the word splitter of the key rule.
"""

from __future__ import annotations

import re
from _thread import allocate_lock
from _weakref import ref as _weak_ref

from ._lifecycle import on_fork_in_child

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Iterable
    from re import Pattern
    from typing import Any, Union

    PatternLike = Union[str, Pattern[str]]

#: What a masked value is replaced by (``alert_infra.REDACTED``).
REDACTED = "[REDACTED]"

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
    def add_secret(self, value: str, owner: object = None, *, cap: int) -> None:
        """Mask ``value`` (and, for a URL, the parts HTTP libraries print alone) while ``owner`` lives;
        ``owner=None``: for the life of the process, with a warning once past ``cap`` such values."""
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
                if len(self._process_wide) > cap and not self._warned_cap:
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
            import logging  # past the cap only: logging stays out of `from alert_infra import Alert`

            logging.getLogger("alert_infra.security").warning(
                "more than %d process-wide secrets are registered; all are kept. Pass owner= to "
                "register_secret() so that secrets are released with what registered them.",
                cap,
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
        text = key if type(key) is str else safe_str(key)
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
    from urllib.parse import urlsplit  # a URL secret only: urllib.parse stays out of `from alert_infra import Alert`

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


def safe_str(value: object) -> str:
    """``str(value)``, or ``<unprintable TypeName>`` when that raises (never raises itself)."""
    try:
        text = str(value)
        return text if type(text) is str else str.__str__(text)
    except Exception:  # noqa: BLE001 - str() of a user object may raise anything
        return f"<unprintable {type(value).__name__}>"
