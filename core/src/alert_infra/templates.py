"""Message templates: ``[templates.NAME]`` (``title`` and ``body``) and per-channel
``title_template`` / ``body_template``, rendered by Jinja2 in a sandbox.

Jinja2 is an optional extra of the core (``pip install 'alert-infra[templates]'``, from a checkout
``pip install './core[templates]'``); ``import alert_infra`` never imports it, and nothing here
imports it before a template is compiled. Without it every function that compiles or renders
raises :class:`~alert_infra.AlertConfigurationError` saying what to install.

The rules (``docs/guide/templates.md`` has the user's view):

- **Sandbox.** Jinja2's ``ImmutableSandboxedEnvironment``: no attribute or item starting with
  ``_`` (``__class__``, ``__globals__``, ``__subclasses__``...), no ``mro``, no ``str.format`` /
  ``format_map`` (the format-string escapes, also through ``|attr``), no mutation of lists or
  dicts. On top of it, a template may call only a short list of methods of plain data (``str``:
  ``upper``, ``lower``, ``strip``, ``split``, ``startswith``...; ``dict``: ``keys``, ``values``,
  ``items``, ``get``; ``list`` / ``tuple``: ``count``, ``index``) and Jinja2's own helpers
  (``loop.cycle``...). Jinja2 3.1.6 or newer is required: older versions let a template reach
  ``str.format`` through ``|attr``.
- **Plain data only.** Variables are redacted before the template sees them
  (:func:`~alert_infra.security.redact_value`): values under a sensitive-looking name (``token``,
  ``password``, ``api_key``...) become ``[REDACTED]``, registered secrets and secret-shaped text
  are masked, and every other object becomes its text, so no method of an application object
  can be reached.
- **Undefined variables are errors** (``StrictUndefined``) naming the variable; a ``{name}``
  placeholder of ``str.format`` is refused with a hint to write ``{{ name }}``.
- **Bounded.** The source is at most :data:`MAX_SOURCE` characters; a render may take at most
  :data:`MAX_STEPS` loop iterations and calls together, calls nest at most :data:`MAX_DEPTH` deep
  (no recursion bomb), ``range()`` gives at most :data:`MAX_RANGE` numbers, no string or list the
  template builds may exceed :data:`MAX_VALUE` characters or items (``*``, ``~``, ``+``,
  ``|center``, ``|indent``, ``|join``, ``|replace``, ``|format``, ``|wordwrap``...), no integer
  :data:`MAX_INT_BITS` bits, and a render stops after :data:`RENDER_TIMEOUT` seconds. The output
  is cut to :data:`MAX_OUTPUT` characters with :data:`TRUNCATION_MARKER`.
- **Errors.** Every problem (syntax, undefined variable, sandbox, bound) is an
  :class:`~alert_infra.AlertConfigurationError` naming the template (``templates.NAME.title``,
  or ``channels.CHANNEL.title_template``) and the template line; it never quotes a variable's
  value unredacted. The exception carries ``template`` and ``lineno`` attributes, and
  ``refused``: true when the sandbox refused the render or a bound stopped it (a caller may
  render again from smaller values, as the webhook channel does for a huge alert).

**The pipeline** of :meth:`Template.render`: redact the variables, render (autoescape off),
redact the output (:func:`~alert_infra.security.redact_text`: a secret assembled from pieces is
masked too), cut it to :data:`MAX_OUTPUT`, then call the channel's ``escape`` hook (for example
:func:`~alert_infra.formatting.escape_html`). Escaping belongs to each channel; cutting to the
provider's limit (markup-aware) comes after, in the channel.

Templates are parsed and compiled once per source text (a bounded cache of :data:`CACHE_SIZE`).
"""

# Why one module of ~1,200 lines: the sandbox policy, the compile-time checks of a template's
# variables and the render caps are one security boundary; split, a caller could reach a render
# that skipped a check. It holds no other job (the channel wrapper is the last ~150 lines).

from __future__ import annotations

import functools
import os
import re
import sys
import threading
import time
from collections.abc import Mapping as MappingABC

from ._checks import did_you_mean
from .exceptions import AlertConfigurationError
from .security import guarded_repr, redact_text, redact_value

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Iterator, Mapping

    from .alert import Alert

__all__ = [
    "CACHE_SIZE",
    "CHANNEL_TEMPLATE_OPTIONS",
    "CHANNEL_VARIABLES",
    "INSTALL_HINT",
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "MAX_OUTPUT",
    "MAX_RANGE",
    "MAX_SOURCE",
    "MAX_STEPS",
    "MAX_VALUE",
    "RENDER_TIMEOUT",
    "RESERVED_VARIABLES",
    "TEMPLATE_KEYS",
    "TRUNCATION_MARKER",
    "MessageTemplate",
    "Template",
    "TemplatedTransport",
    "alert_context",
    "compile_channel_template",
    "compile_template",
    "create_alert_from_template",
    "digest_context",
    "engine_problem",
    "load_templates",
    "templates_from_config",
]

#: The most characters a render returns; longer output is cut and ends in :data:`TRUNCATION_MARKER`.
MAX_OUTPUT = 64 * 1024
#: Appended to output cut at :data:`MAX_OUTPUT`.
TRUNCATION_MARKER = "… [truncated]"
#: The longest template source, in characters.
MAX_SOURCE = 64 * 1024
#: Loop iterations and calls (functions, macros, filters) of one render, together.
MAX_STEPS = 100_000
#: How deep calls may nest (a macro calling a macro ...): a recursive macro stops here.
MAX_DEPTH = 32
#: The most numbers one ``range()`` gives.
MAX_RANGE = 10_000
#: The longest string or list a template may build (``*``, ``~``, ``+``, amplifying filters).
MAX_VALUE = 1024 * 1024
#: The widest integer a template may compute (``**``, ``*``).
MAX_INT_BITS = 4096
#: Seconds one render may take.
RENDER_TIMEOUT = 2.0
#: Compiled templates kept (by source text).
CACHE_SIZE = 256
#: The keys of a ``[templates.NAME]`` table.
TEMPLATE_KEYS = ("title", "body")
#: Variables of :func:`create_alert_from_template` that also set the alert's field of that name
#: (every :class:`~alert_infra.Alert` argument but ``title`` and ``message``); the template sees
#: them too.
RESERVED_VARIABLES = (
    "severity",
    "source",
    "tags",
    "metadata",
    "created_at",
    "correlation_id",
    "request_id",
    "fingerprint",
    "links",
    "status",
    "redact_sensitive_data",
)
INSTALL_HINT = (
    "message templates need Jinja2: pip install 'alert-infra[templates]' "
    "(from a checkout: pip install './core[templates]')"
)

_MIN_JINJA = (3, 1, 6)
_OUTPUT_SLACK = 8 * 1024  # rendered beyond MAX_OUTPUT before redaction, so a cut never halves a secret
_FIELD_WIDTH = 1000  # widest printf field (%1000d) a template may format
_ALERT_FIELDS = (
    "title",
    "message",
    "severity",
    "source",
    "tags",
    "metadata",
    "status",
    "fingerprint",
    "created_at",
    "links",
)
_SYNONYMS = {"message": "body", "text": "body", "subject": "title"}
# str.format placeholders: {name}, {name.attr}, {name[0]}, {name!r}, {name:>10}
_FORMAT_PLACEHOLDER = re.compile(
    r"(?<!\{)\{\s*([A-Za-z_]\w*)((?:\.\w+|\[[^\]{}]*\])*)(?:![rsa])?(?::[^{}\n]*)?\}(?!\})"
)
_MISSING_KEY = re.compile(r"^'dict object' has no attribute '(.*)'$", re.S)  # Jinja2's words for a missing key
_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_STR_METHODS = frozenset(
    {
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "index",
        "isalnum",
        "isalpha",
        "isdecimal",
        "isdigit",
        "islower",
        "isnumeric",
        "isspace",
        "istitle",
        "isupper",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "rfind",
        "rindex",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
    }
)
_DATA_METHODS: tuple[tuple[type | tuple[type, ...], frozenset[str]], ...] = (
    (str, _STR_METHODS),
    (dict, frozenset({"get", "items", "keys", "values"})),
    (list, frozenset({"count", "index"})),
    (tuple, frozenset({"count", "index"})),
    (range, frozenset({"count", "index"})),
    ((int, float, complex, bytes, bytearray, set, frozenset), frozenset()),
)


# -- errors --------------------------------------------------------------------------------------


def _error(label: str, lineno: int | None, problem: str, *, refused: bool = False) -> AlertConfigurationError:
    where = f"{label}, line {lineno}" if lineno else label
    exc = AlertConfigurationError(f"{where}: {problem}")
    exc.template = label  # type: ignore[attr-defined]
    exc.lineno = lineno  # type: ignore[attr-defined]
    exc.refused = refused  # type: ignore[attr-defined]
    return exc


def _clean(message: object, limit: int = 300) -> str:
    """An exception's text for an error message: redacted, one line, cut."""
    text = redact_text(str(message)).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _jinja() -> Any:
    """The ``jinja2`` module, or the error that says what to install."""
    try:
        import jinja2  # Jinja2 is the [templates] extra: loaded with the first template, said how to install
    except ImportError:
        raise AlertConfigurationError(INSTALL_HINT) from None
    version = tuple(int(p) if p.isdigit() else 0 for p in jinja2.__version__.split(".")[:3])
    if version < _MIN_JINJA:
        raise AlertConfigurationError(
            f"message templates need Jinja2 3.1.6 or newer (older versions let a template escape "
            f"the sandbox), found {jinja2.__version__}: pip install -U 'Jinja2>=3.1.6'"
        )
    return jinja2


# -- the per-render budget -----------------------------------------------------------------------


class _Budget:
    __slots__ = ("deadline", "depth", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self.depth = 0
        self.deadline = time.monotonic() + RENDER_TIMEOUT

    def step(self, security_error: type[Exception]) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise security_error(f"more than {MAX_STEPS} loop iterations and calls in one render")
        if self.steps % 64 == 0 and time.monotonic() > self.deadline:
            raise security_error(f"rendering took longer than {RENDER_TIMEOUT:g} seconds")


_LOCAL = threading.local()


def _budget() -> _Budget | None:
    budget: _Budget | None = getattr(_LOCAL, "budget", None)
    return budget


# -- the environment -----------------------------------------------------------------------------

_ENV_LOCK = threading.Lock()
_ENV: Any = None


def _environment() -> Any:
    global _ENV
    if _ENV is None:
        with _ENV_LOCK:
            if _ENV is None:
                _ENV = _build_environment(_jinja())
    return _ENV


def _length(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, bytes)) else 0


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _build_environment(jinja2: Any) -> Any:
    # the first template only: Jinja2 stays out of `import alert_infra.templates`
    from jinja2 import nodes, pass_context
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.visitor import NodeTransformer

    def refuse(message: str) -> SecurityError:
        return SecurityError(message)

    def step() -> _Budget | None:
        budget = _budget()
        if budget is not None:
            budget.step(SecurityError)
        return budget

    def check_size(value: Any, what: str) -> Any:
        if _length(value) > MAX_VALUE:
            raise refuse(f"{what} would be longer than {MAX_VALUE} characters or items")
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            raise refuse(f"{what} would be wider than {MAX_INT_BITS} bits")
        return value

    def check_printf(fmt: Any) -> None:
        if not isinstance(fmt, str):
            return
        for match in _PRINTF_FIELD.finditer(fmt):
            for part in match.groups():
                if part == "*" or (part and int(part) > _FIELD_WIDTH):
                    raise refuse(f"a %-format field wider than {_FIELD_WIDTH} (or '*')")

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "%", "+"})
        alert_infra_bound: Any = None  # the AST pass below
        alert_infra_security_error: Any = SecurityError

        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            if not super().is_safe_attribute(obj, attr, value):
                return False
            if not callable(value):
                return True
            for kind, allowed in _DATA_METHODS:
                if isinstance(obj, kind):
                    return attr in allowed
            return True  # Jinja2's own helpers: loop.cycle, cycler.next, joiner()...

        def wrap_str_format(self, value: Any) -> None:
            # Jinja2 hands out a sandboxed str.format / format_map; we hand out none (a width such as
            # {:>999999999} is a memory bomb): is_safe_attribute refuses them like any unlisted method.
            return None

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                for seq, times in ((left, right), (right, left)):
                    repeats = isinstance(seq, (str, list, tuple)) and isinstance(times, int)
                    if repeats and len(seq) * max(times, 0) > MAX_VALUE:
                        raise refuse(f"a repetition longer than {MAX_VALUE} characters or items")
                integers = isinstance(left, int) and isinstance(right, int)
                if integers and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise refuse(f"a product wider than {MAX_INT_BITS} bits")
            elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                if right > MAX_INT_BITS or right * (abs(left).bit_length() - 1) > MAX_INT_BITS:
                    raise refuse(f"a power wider than {MAX_INT_BITS} bits")
            elif operator == "%" and isinstance(left, str):
                check_printf(left)
            result = super().call_binop(context, operator, left, right)
            return check_size(result, "a result")

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            budget = step()
            if budget is None:
                return super().call(__context, __obj, *args, **kwargs)
            budget.depth += 1
            try:
                if budget.depth > MAX_DEPTH:
                    raise refuse(f"calls nested deeper than {MAX_DEPTH} (a recursive macro?)")
                return super().call(__context, __obj, *args, **kwargs)
            finally:
                budget.depth -= 1

    env = Sandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        auto_reload=False,
        cache_size=0,  # we cache by source text ourselves
    )

    # -- globals: a bounded range(), no lipsum (it generates text on demand) --------------------
    def bounded_range(*args: int) -> range:
        numbers = range(*args)
        if len(numbers) > MAX_RANGE:
            raise refuse(f"range() of more than {MAX_RANGE} numbers")
        return numbers

    env.globals["range"] = bounded_range
    env.globals.pop("lipsum", None)

    # -- filters: each counts as a step; the ones that can amplify check their result size first -
    def pre_center(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        width = _arg(args, kwargs, 1, "width", 80)
        if isinstance(width, int) and width > MAX_VALUE:
            raise refuse(f"|center wider than {MAX_VALUE}")

    def pre_indent(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        text = str(args[0]) if args else ""
        width = _arg(args, kwargs, 1, "width", 4)
        pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        if pad > MAX_VALUE or len(text) + (text.count("\n") + 1) * max(pad, 0) > MAX_VALUE:
            raise refuse(f"|indent longer than {MAX_VALUE} characters")

    def pre_replace(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        text, old, new = (str(_arg(args, kwargs, i, n, "")) for i, n in ((0, "s"), (1, "old"), (2, "new")))
        count = _arg(args, kwargs, 3, "count", None)
        hits = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        if len(text) + hits * max(len(new) - len(old), 0) > MAX_VALUE:
            raise refuse(f"|replace longer than {MAX_VALUE} characters")

    def pre_join(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        items = args[0] if args else ()
        sep = _arg(args, kwargs, 1, "d", "")
        count = len(items) if hasattr(items, "__len__") else 0
        if isinstance(sep, str) and len(sep) * max(count - 1, 0) > MAX_VALUE:
            raise refuse(f"|join longer than {MAX_VALUE} characters")

    def pre_format(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        check_printf(args[0] if args else None)

    def pre_slice(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        slices = _arg(args, kwargs, 1, "slices", 1)
        if isinstance(slices, int) and slices > MAX_RANGE:
            raise refuse(f"|slice into more than {MAX_RANGE} parts")

    def pre_batch(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        size = _arg(args, kwargs, 1, "linecount", 1)
        if isinstance(size, int) and size > MAX_RANGE:
            raise refuse(f"|batch of more than {MAX_RANGE} items")

    def pre_wordwrap(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        text = str(args[0]) if args else ""
        width = _arg(args, kwargs, 1, "width", 79)
        wrap = _arg(args, kwargs, 3, "wrapstring", None)
        lines = len(text) // max(width if isinstance(width, int) else 1, 1) + text.count("\n") + 1
        if isinstance(wrap, str) and len(text) + len(wrap) * lines > MAX_VALUE:
            raise refuse(f"|wordwrap longer than {MAX_VALUE} characters")

    def pre_tojson(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        indent = _arg(args, kwargs, 1, "indent", None)
        if (isinstance(indent, int) and indent > 16) or (isinstance(indent, str) and len(indent) > 16):
            raise refuse("|tojson indent wider than 16")

    def pre_urlize(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        for name in ("target", "rel"):
            value = kwargs.get(name)
            if isinstance(value, str) and len(value) > 256:
                raise refuse(f"|urlize {name} longer than 256 characters")

    checks: dict[str, Callable[[tuple[Any, ...], Mapping[str, Any]], None]] = {
        "center": pre_center,
        "indent": pre_indent,
        "replace": pre_replace,
        "join": pre_join,
        "format": pre_format,
        "slice": pre_slice,
        "batch": pre_batch,
        "wordwrap": pre_wordwrap,
        "tojson": pre_tojson,
        "urlize": pre_urlize,
    }

    def guard(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        passes = getattr(original, "jinja_pass_arg", None) is not None
        check = checks.get(name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            step()
            if check is not None:
                check(args[1:] if passes else args, kwargs)
            return check_size(original(*args, **kwargs), f"|{name}")

        functools.update_wrapper(guarded, original)  # keeps jinja_pass_arg
        return guarded

    env.filters = {name: guard(name, f) for name, f in env.filters.items()}

    @pass_context
    def loop_budget(context: Any, iterable: Any) -> Iterator[Any]:
        for item in iterable:
            step()
            yield item

    @pass_context
    def size_guard(context: Any, value: Any) -> Any:
        return check_size(value, "a concatenation")

    env.filters["_alert_infra_loop"] = loop_budget
    env.filters["_alert_infra_size"] = size_guard

    class Bound(NodeTransformer):
        """Every for-loop iterates through the budget; every ``~`` result is size-checked."""

        def visit_For(self, node: Any) -> Any:
            node = self.generic_visit(node)
            node.iter = nodes.Filter(node.iter, "_alert_infra_loop", [], [], None, None, lineno=node.lineno)
            return node

        def visit_Concat(self, node: Any) -> Any:
            node = self.generic_visit(node)
            return nodes.Filter(node, "_alert_infra_size", [], [], None, None, lineno=node.lineno)

    env.alert_infra_bound = Bound()
    env.alert_infra_security_error = SecurityError
    return env


# -- compiling -----------------------------------------------------------------------------------


class _Problem(Exception):
    def __init__(self, lineno: int | None, problem: str) -> None:
        super().__init__(problem)
        self.lineno = lineno
        self.problem = problem


def _placeholder_problem(env: Any, source: str, fields: tuple[str, ...] = ()) -> _Problem | None:
    """A ``{name}`` placeholder of ``str.format`` in the template's literal text, if any (a name
    in ``fields`` is suggested as ``alert.name``: a channel template reads the alert's fields)."""
    for lineno, kind, value in env.lex(source):
        if kind != "data":
            continue
        match = _FORMAT_PLACEHOLDER.search(value)
        if match:
            name = match.group(1) + match.group(2)
            if match.group(1) in fields:
                name = "alert." + name
            line = lineno + value.count("\n", 0, match.start())
            if match.start() and value[match.start() - 1] == "$":
                return _Problem(
                    line,
                    f"'${match.group(0)}' is not expanded in a template (configuration variables are not "
                    f"template input, and a template is no place for a secret); for the literal text write "
                    f"{{{{ '${match.group(0)}' }}}}",
                )
            return _Problem(
                line,
                f"{match.group(0)!r} is a str.format placeholder: templates use Jinja2 syntax, write "
                f"{{{{ {name} }}}} (for the literal text, write {{{{ {match.group(0)!r} }}}})",
            )
    return None


_CACHE: dict[str, tuple[Any, frozenset[str]]] = {}
_CACHE_LOCK = threading.Lock()


def _compiled(source: str) -> tuple[Any, frozenset[str]]:
    """``(jinja template, variables it reads)`` for ``source``, parsed and compiled once."""
    with _CACHE_LOCK:
        hit = _CACHE.pop(source, None)
        if hit is not None:
            _CACHE[source] = hit  # most recently used last
            return hit
    jinja2 = _jinja()
    env = _environment()
    from jinja2 import meta  # Jinja2 is loaded by then (_environment): kept out of the module's import

    if len(source) > MAX_SOURCE:
        raise _Problem(None, f"longer than {MAX_SOURCE} characters")
    try:
        problem = _placeholder_problem(env, source)
        if problem is not None:
            raise problem
        tree = env.parse(source)
        variables = frozenset(meta.find_undeclared_variables(tree)) - set(env.globals)
        template = env.from_string(env.alert_infra_bound.visit(tree))
    except jinja2.TemplateSyntaxError as exc:
        raise _Problem(exc.lineno, _clean(exc.message or "syntax error")) from None
    except RecursionError:
        raise _Problem(None, "nested too deeply to parse") from None
    entry = (template, variables)
    with _CACHE_LOCK:
        _CACHE[source] = entry
        while len(_CACHE) > CACHE_SIZE:
            del _CACHE[next(iter(_CACHE))]
    return entry


def _template_line(exc: BaseException) -> int | None:
    """The template line an exception was raised at (Jinja2 rewrites its traceback to show it)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class Template:
    """One compiled template (see :func:`compile_template`)."""

    __slots__ = ("_template", "label", "source", "variables")

    def __init__(self, source: str, label: str) -> None:
        if not isinstance(source, str):
            raise _error(label, None, f"a template is text, got a {type(source).__name__}")
        self.source = source
        self.label = label
        try:
            self._template, variables = _compiled(source)
        except _Problem as problem:
            raise _error(label, problem.lineno, problem.problem) from None
        #: The variables the template reads (names only; ``alert`` for a channel template).
        self.variables: frozenset[str] = variables

    @guarded_repr
    def __repr__(self) -> str:
        return f"Template({self.label!r})"

    def render(self, variables: Mapping[str, Any] | None = None, *, escape: Callable[[str], str] | None = None) -> str:
        """Render with ``variables``: redact them, render, redact the output, cut it to
        :data:`MAX_OUTPUT`, then ``escape`` it (the channel's escaper, if any).

        Raises:
            AlertConfigurationError: an undefined variable (named), a sandbox violation, a bound
                exceeded; the message names the template and its line.
        """
        jinja2 = _jinja()
        context = redact_value(dict(variables or {}))
        if not isinstance(context, dict):  # pragma: no cover - redact_value keeps a dict a dict
            context = {}
        security_error = _environment().alert_infra_security_error
        previous = _budget()
        _LOCAL.budget = _Budget()
        chunks: list[str] = []
        size = 0
        stream = None
        try:
            stream = self._template.generate(context)
            for chunk in stream:
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_OUTPUT + _OUTPUT_SLACK:
                    break
        except jinja2.UndefinedError as exc:
            missing = sorted(self.variables - set(context))
            hint = f" (missing variables: {', '.join(missing)})" if len(missing) > 1 else ""
            message = exc.message or "undefined"
            key = _MISSING_KEY.match(message)
            if key:  # {{ alert.metadata.host }} on an alert without it: say which name, and the way out
                message = f"{key.group(1)!r} is undefined (no such key: write ...|default('') for an optional one)"
            raise _error(self.label, _template_line(exc), _clean(message) + hint) from None
        except security_error as exc:
            problem = "refused by the sandbox: " + _clean(exc)
            raise _error(self.label, _template_line(exc), problem, refused=True) from None
        except RecursionError as exc:
            raise _error(self.label, _template_line(exc), "recursion too deep", refused=True) from None
        except MemoryError as exc:
            raise _error(self.label, _template_line(exc), "out of memory", refused=True) from None
        except Exception as exc:  # noqa: BLE001 - a template's TypeError, ZeroDivisionError, ...
            problem = f"{type(exc).__name__}: {_clean(exc)}"
            raise _error(self.label, _template_line(exc), problem) from None
        finally:
            if stream is not None:
                stream.close()
            _LOCAL.budget = previous
        text = redact_text("".join(chunks))
        if len(text) > MAX_OUTPUT:
            text = text[: MAX_OUTPUT - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
        return escape(text) if escape is not None else text

    def render_alert(self, alert: Alert, *, escape: Callable[[str], str] | None = None) -> str:
        """Render for one alert: the template sees ``alert`` (see :func:`alert_context`)."""
        return self.render(alert_context(alert), escape=escape)

    def render_digest(
        self,
        alerts: Iterable[Alert],
        group: Mapping[str, Any] | None = None,
        *,
        escape: Callable[[str], str] | None = None,
    ) -> str:
        """Render for a digest: the template sees ``alerts``, ``group`` and ``alert`` (the first)."""
        return self.render(digest_context(alerts, group), escape=escape)


def compile_template(source: str, name: str, *, channel: str | None = None) -> Template:
    """Compile ``source`` (validated at once: syntax, ``{name}`` placeholders, size).

    ``name`` and ``channel`` only label errors: ``channels.CHANNEL.NAME`` with a channel
    (``compile_template(text, "title_template", channel="ops")``), else ``templates.NAME``.

    Raises:
        AlertConfigurationError: naming the template and the line; or saying to install Jinja2.
    """
    label = f"channels.{channel}.{name}" if channel is not None else f"templates.{name}"
    return Template(source, label)


# -- what a template sees ------------------------------------------------------------------------


def alert_context(alert: Alert) -> dict[str, Any]:
    """``{"alert": {...}}``: the redacted alert's ``title``, ``message``, ``severity``, ``source``,
    ``tags``, ``metadata``, ``status``, ``fingerprint``, ``created_at`` (ISO 8601) and ``links``
    (``[label, url]`` pairs)."""
    data = alert.to_dict()  # redacted whatever the alert's flag says
    return {"alert": {key: data[key] for key in _ALERT_FIELDS}}


def _digest_of(alert: Alert, group: Mapping[str, Any] | None) -> tuple[list[Alert] | None, Mapping[str, Any] | None]:
    """``(alerts, group)`` of a digest alert of grouping (``metadata["digest"]``, the key
    ``alert_infra.lifecycle.grouping.DIGEST_KEY``), else ``(None, group)``."""
    digest = alert.metadata.get("digest")
    if not isinstance(digest, dict) or "group_key" not in digest or not isinstance(digest.get("alerts"), list):
        return None, group
    from .alert import Alert as AlertClass  # a digest being rendered (this module needs no alert model)

    listed = []
    for item in digest["alerts"]:
        try:
            listed.append(AlertClass.from_dict(item))
        except Exception:  # noqa: BLE001, S112 - an entry that is not an alert any more is left out
            continue
    return listed, {key: value for key, value in digest.items() if key != "alerts"}


def digest_context(alerts: Iterable[Alert], group: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"alerts": [...], "group": {...}, "alert": <the first>}`` for a digest template."""
    items = [alert_context(a)["alert"] for a in alerts]
    return {"alerts": items, "group": dict(group or {}), "alert": items[0] if items else {}}


# -- per-channel templates: title_template / body_template ---------------------------------------

#: The options of every channel that hold a template (inline template text, Jinja2 syntax).
CHANNEL_TEMPLATE_OPTIONS = ("title_template", "body_template")
#: The variables a channel template sees: ``alert``; in a digest also ``alerts`` and ``group``.
CHANNEL_VARIABLES = ("alert", "alerts", "group")


def engine_problem() -> str | None:
    """Why templates cannot be compiled here (Jinja2 missing or too old), or ``None``.

    Configuration uses it to tell a template written wrong (the file's problem, everywhere) from
    a machine without the ``templates`` extra (that channel's problem, on that machine)."""
    try:
        _jinja()
    except AlertConfigurationError as exc:
        return str(exc)
    return None


_DICT_METHODS = ("get", "items", "keys", "values")  # alert is a dict: alert.get("source", "-")


def _channel_template_problem(template: Template, names: Iterable[str]) -> _Problem | None:
    """A channel template that would fail for every alert, found before any is sent: a variable
    other than ``alert``/``alerts``/``group`` (``{{ title }}`` for ``{{ alert.title }}``), a field the
    alert does not have (``{{ alert.titel }}``), or text that is a ``[templates.NAME]`` name."""
    from jinja2 import nodes  # Jinja2 is loaded by then: kept out of the module's import

    text = template.source.strip()
    known = [n for n in names if isinstance(n, str)]
    if text and "{" not in text and "%" not in text and re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", text):
        hint = "" if text in known else did_you_mean(text, known)
        if text in known or hint:
            what = f"is the name of [templates.{text}]" if text in known else f"looks like a template name{hint}"
            return _Problem(
                None,
                f"{text!r} {what}, but a channel template is the template text itself (inline, Jinja2 syntax): "
                "write it here, e.g. '[{{ alert.severity|upper }}] {{ alert.title }}'",
            )
    tree = _environment().parse(template.source)
    for name in sorted(template.variables - set(CHANNEL_VARIABLES)):
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name and n.ctx == "load"), None)
        hint = f"; did you mean 'alert.{name}'?" if name in _ALERT_FIELDS else did_you_mean(name, CHANNEL_VARIABLES)
        return _Problem(
            line,
            f"{name!r} is undefined: a channel template sees alert (alert.title, alert.message, alert.severity, "
            f"...) and, in a digest, alerts and group{hint}",
        )
    rebound = any(n.name == "alert" and n.ctx in ("store", "param") for n in tree.find_all(nodes.Name)) or any(
        getattr(n, "name", None) == "alert" for n in tree.find_all(nodes.Macro)
    )
    if rebound:  # {% set alert = ... %}, {% for alert in alerts %}: its fields are the template's business
        return None
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name == "alert"):
            continue
        if isinstance(node, nodes.Getattr):
            field = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            field = node.arg.value
        else:
            continue
        if field not in _ALERT_FIELDS and field not in _DICT_METHODS:
            return _Problem(
                node.lineno,
                f"the alert has no field {field!r}{did_you_mean(field, _ALERT_FIELDS)} (its fields: "
                f"{', '.join(_ALERT_FIELDS)}; metadata values are alert.metadata.KEY)",
            )
    return None


def compile_channel_template(source: str, option: str, channel: str, *, template_names: Iterable[str] = ()) -> Template:
    """Compile a channel's ``title_template`` or ``body_template`` (``option``), checked for what
    would fail on every alert: syntax, ``{name}`` placeholders, a variable other than ``alert``,
    ``alerts`` and ``group``, an alert field that does not exist, and text that is only the name
    of a ``[templates.NAME]`` entry (``template_names``; a channel template is inline text).

    Raises:
        AlertConfigurationError: ``channels.CHANNEL.OPTION, line N: ...`` (``template`` and
            ``lineno`` attributes), with a "did you mean" where one is likely.
    """
    if isinstance(source, str) and len(source) <= MAX_SOURCE:
        jinja2 = _jinja()
        try:
            placeholder = _placeholder_problem(_environment(), source, _ALERT_FIELDS)
        except jinja2.TemplateSyntaxError:
            placeholder = None  # compile_template reports it, with its line
        if placeholder is not None:
            raise _error(f"channels.{channel}.{option}", placeholder.lineno, placeholder.problem)
    template = compile_template(source, option, channel=channel)
    problem = _channel_template_problem(template, template_names)
    if problem is not None:
        raise _error(template.label, problem.lineno, problem.problem)
    return template


def _channel_of(transport: Any) -> str:
    try:
        name = getattr(transport, "name", None)
    except Exception:  # noqa: BLE001 - a hostile property: the label only
        name = None
    return name if isinstance(name, str) and name else type(transport).__name__


def _as_template(value: Any, option: str, channel: str) -> Template | None:
    if value is None or isinstance(value, Template):
        return value
    if isinstance(value, str):
        return compile_channel_template(value, option, channel)
    raise _error(f"channels.{channel}.{option}", None, f"a template is text, got a {type(value).__name__}")


#: Attributes of :class:`TemplatedTransport` never looked up on the transport it wraps (its own,
#: or present only when the wrapped transport has them: see the properties).
_WRAPPER_OWN = frozenset(
    {"transport", "title_template", "body_template", "send", "asend", "update", "blocking", "max_send_time"}
)


class TemplatedTransport:
    """A channel whose title and message are rendered from its ``title_template`` /
    ``body_template`` before the transport it wraps sends the alert.

    Configuration builds one around every channel that sets either option
    (:meth:`~alert_infra.config.AlertConfig.build_channels`, so queued workers, which build their
    channels from the same configuration, render on the worker too); in Python, wrap any
    transport yourself::

        AlertDispatcher([TemplatedTransport(slack, title_template="[{{ alert.severity|upper }}] {{ alert.title }}")])

    **Why a wrapper.** The template is applied at the one seam every delivery path shares: the
    transport's ``send`` / ``asend`` / ``update``. The dispatcher, the spool and Celery workers,
    ``alert-infra check --send-test`` and the contract kit then see an ordinary transport, and no
    plugin needs to know templates exist: the wrapped transport receives an alert whose ``title``
    and ``message`` are the rendered text and escapes and cuts them, markup-aware, to its
    provider's limit exactly as it does any alert (render, then escape, then cut). The rendered
    alert keeps every other field, the ``fingerprint`` included (a resolve still matches, a
    webhook id or a PagerDuty dedup key does not change).

    **Failures.** A render that fails (an undefined variable, named; a sandbox refusal; a bound;
    empty output) raises :class:`~alert_infra.AlertConfigurationError` naming
    ``channels.CHANNEL.OPTION`` and the template line: that channel's outcome fails, is not
    retried (it would fail again), and no other channel is touched.

    **Forwarding.** Everything else is the wrapped transport's: ``name`` (read and set),
    ``timeout``, ``secret_fields`` and the values they name, ``close()``, ``format``... ``send``,
    ``asend`` and ``update`` exist exactly when the wrapped transport has them. ``blocking`` is
    true and ``max_send_time`` is the wrapped transport's bound (0 for a non-blocking one) plus
    :data:`RENDER_TIMEOUT` per template: a render is bounded CPU work that can outlast a short
    channel timeout, so it runs in the caller's thread only when that bound fits the timeout.
    ``asend`` renders on the event loop's thread before it awaits (a render is short and bounded).

    Args:
        transport: the channel to wrap (anything with ``send`` and/or ``asend``).
        title_template: template text (or a compiled :class:`Template`) for the alert's title.
        body_template: the same for its message.
        channel: the channel name errors are labelled with (default: the transport's ``name``).

    Raises:
        AlertConfigurationError: a template that does not compile (channel, option and line
            named), neither template given, or a transport without ``send``/``asend``.
    """

    __slots__ = ("__weakref__", "body_template", "title_template", "transport")

    transport: Any
    title_template: Template | None
    body_template: Template | None

    def __init__(
        self,
        transport: Any,
        *,
        title_template: str | Template | None = None,
        body_template: str | Template | None = None,
        channel: str | None = None,
    ) -> None:
        label = channel if channel is not None else _channel_of(transport)
        if not callable(getattr(transport, "send", None)) and not callable(getattr(transport, "asend", None)):
            raise AlertConfigurationError(
                f"channels.{label}: {type(transport).__name__} has no send(alert) or asend(alert) to wrap"
            )
        title = _as_template(title_template, "title_template", label)
        body = _as_template(body_template, "body_template", label)
        if title is None and body is None:
            raise AlertConfigurationError(f"channels.{label}: give title_template, body_template or both")
        object.__setattr__(self, "transport", transport)
        object.__setattr__(self, "title_template", title)
        object.__setattr__(self, "body_template", body)

    # -- rendering -------------------------------------------------------------------------------
    def render(
        self, alert: Alert, *, alerts: Iterable[Alert] | None = None, group: Mapping[str, Any] | None = None
    ) -> Alert:
        """``alert`` with its title and/or message rendered from the templates (the other fields,
        the fingerprint included, as they are). With ``alerts`` (a digest) the templates also see
        ``alerts`` and ``group``; a digest alert of grouping (its ``metadata["digest"]``, see
        ``docs/guide/lifecycle.md``) gives them by itself: ``alerts`` the alerts it lists, ``group``
        the rest of the digest (``labels``, ``group_key``, the counts).

        Raises:
            AlertConfigurationError: the template and line named (undefined variable, sandbox,
                bound, or output that is empty once stripped: an alert needs a title and a message).
        """
        if alerts is None:
            alerts, group = _digest_of(alert, group)
        context = alert_context(alert) if alerts is None else {**digest_context(alerts, group), **alert_context(alert)}
        changes: dict[str, Any] = {}
        for field, template in (("title", self.title_template), ("message", self.body_template)):
            if template is None:
                continue
            text = template.render(context).strip()  # as Alert strips a title and a message
            if not text:
                raise _error(template.label, None, f"rendered empty text (an alert needs a {field})")
            changes[field] = text
        # The output is redacted by Template.render; only the rendered fields change, and the
        # fingerprint is pinned: derived from the title otherwise, it would change with it.
        return alert.unchecked_copy(**changes, _fingerprint=alert.fingerprint)

    def _send(self, alert: Alert) -> Any:
        return self.transport.send(self.render(alert))

    async def _asend(self, alert: Alert) -> Any:
        return await self.transport.asend(self.render(alert))

    def _update(self, alert: Alert, handle: Any) -> Any:
        return self.transport.update(self.render(alert), handle)

    # -- the transport protocol: present exactly when the wrapped transport has it -----------------
    def _wrapped(self, name: str, own: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(getattr(self.transport, name, None)):
            raise AttributeError(name)
        return own

    @property
    def send(self) -> Callable[[Alert], Any]:
        return self._wrapped("send", self._send)

    @property
    def asend(self) -> Callable[[Alert], Any]:
        return self._wrapped("asend", self._asend)

    @property
    def update(self) -> Callable[[Alert, Any], Any]:
        return self._wrapped("update", self._update)

    @property
    def blocking(self) -> bool:
        return True

    @property
    def max_send_time(self) -> float | None:
        inner = self.transport
        if getattr(inner, "blocking", True):
            bound = getattr(inner, "max_send_time", None)
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not 0 < bound < float("inf"):
                return None
        else:
            bound = 0.0
        renders = (self.title_template is not None) + (self.body_template is not None)
        return float(bound) + renders * RENDER_TIMEOUT

    # -- everything else is the wrapped transport's ----------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name in _WRAPPER_OWN or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)
        try:
            inner = object.__getattribute__(self, "transport")
        except AttributeError:  # half-built (copy, unpickling): nothing to forward to
            raise AttributeError(name) from None
        return getattr(inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("transport", "title_template", "body_template"):
            object.__setattr__(self, name, value)
        else:  # name (the CLI renames two slack:// channels), clock, ...: the transport's own
            setattr(self.transport, name, value)

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if callable(close):
            close()

    @guarded_repr
    def __repr__(self) -> str:
        return f"TemplatedTransport({self.transport!r})"


# -- [templates.NAME] ----------------------------------------------------------------------------


class MessageTemplate:
    """A named ``[templates.NAME]``: its ``title`` and ``body``, compiled."""

    __slots__ = ("body", "name", "title")

    def __init__(self, name: str, title: Template, body: Template) -> None:
        self.name = name
        self.title = title
        self.body = body

    @guarded_repr
    def __repr__(self) -> str:
        return f"MessageTemplate({self.name!r})"

    @property
    def variables(self) -> frozenset[str]:
        """The variables the title and the body read."""
        return self.title.variables | self.body.variables

    def render(self, variables: Mapping[str, Any] | None = None) -> tuple[str, str]:
        """``(title, body)`` rendered with ``variables`` (see :meth:`Template.render`)."""
        values = dict(variables or {})
        return self.title.render(values), self.body.render(values)


def templates_from_config(
    data: Mapping[str, Any], problems: list[str] | None = None, *, source: str = "<mapping>"
) -> dict[str, MessageTemplate]:
    """The ``[templates.NAME]`` tables of a configuration mapping (the structure
    :func:`~alert_infra.config.load_config` reads), every one compiled now.

    With ``problems`` (a list), each problem is appended to it (``templates.NAME.title, line 2:
    ...``) and the valid templates are returned: the form ``parse_config`` and ``alert-infra
    check`` use. Without it, any problem raises.

    Raises:
        AlertConfigurationError: without ``problems``, listing every problem (and with it, when
            Jinja2 is missing: that is one problem too).
    """
    found: list[str] = [] if problems is None else problems
    templates: dict[str, MessageTemplate] = {}
    table = data.get("templates", {}) if isinstance(data, MappingABC) else None
    if not isinstance(table, MappingABC):
        found.append("templates: must be a table of [templates.<name>] tables")
        table = {}
    if table:
        try:
            _jinja()
        except AlertConfigurationError as exc:
            found.append(f"templates: {exc}")
            table = {}
    for name, entry in table.items():
        where = f"templates.{name}"
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", name):
            found.append("templates: a template name is letters, digits, '_', '-', '.' (at most 64)")
            continue
        if not isinstance(entry, MappingABC):
            found.append(f"{where}: must be a table with title and body")
            continue
        compiled: dict[str, Template] = {}
        for key in entry:
            if key not in TEMPLATE_KEYS:
                hint = f"; did you mean {_SYNONYMS[key]!r}?" if key in _SYNONYMS else did_you_mean(key, TEMPLATE_KEYS)
                found.append(f"{where}.{key}: unknown key{hint} (a template has title and body)")
        for key in TEMPLATE_KEYS:
            if key not in entry:
                found.append(f"{where}.{key}: missing (a template has title and body)")
                continue
            try:
                compiled[key] = compile_template(entry[key], f"{name}.{key}")
            except AlertConfigurationError as exc:
                found.append(str(exc))
        if len(compiled) == len(TEMPLATE_KEYS):
            templates[name] = MessageTemplate(name, compiled["title"], compiled["body"])
    if problems is None and found:
        if len(found) == 1:
            raise AlertConfigurationError(f"{source}: {found[0]}")
        raise AlertConfigurationError(f"{len(found)} problems in {source}:\n" + "\n".join(f"  - {p}" for p in found))
    return templates


def _read_file(path: str) -> dict[str, Any]:
    """The configuration mapping in ``path`` (``pyproject.toml``: its ``[tool.alert-infra]``)."""
    if sys.version_info >= (3, 11):
        import tomllib  # a templates file only: the TOML reader (3.11+)
    else:  # pragma: no cover - exercised on 3.9 and 3.10
        import tomli as tomllib  # a templates file only: the tomli backport (3.9, 3.10)
    try:
        with open(path, "rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
    except OSError as exc:
        raise AlertConfigurationError(f"cannot read {path}: {type(exc).__name__}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AlertConfigurationError(f"{path} is not valid TOML: {exc}") from None
    if os.path.basename(path) == "pyproject.toml":
        tool = data.get("tool")
        tool = tool if isinstance(tool, dict) else {}
        table = tool.get("alert-infra", tool.get("alert_infra"))
        return table if isinstance(table, dict) else {}
    return data


def load_templates(config: Any = None) -> dict[str, MessageTemplate]:
    """The message templates of ``config``, validated: a mapping (the configuration structure),
    a path to a configuration file, an object with a ``templates`` mapping (an ``AlertConfig``
    once configuration reads them) or with the ``source`` path it was read from, or ``None``:
    the process's configuration file, found as :func:`~alert_infra.config.find_config` finds it.

    Raises:
        AlertConfigurationError: no configuration, or a problem in its templates.
    """
    if config is None:
        from .config import find_config  # lazy: configuration is a higher layer

        found = find_config()
        if found is None:
            raise AlertConfigurationError(
                "no alert-infra configuration to read [templates] from: pass config=, set "
                "ALERT_INFRA_CONFIG, create ./alert-infra.toml, or add [tool.alert-infra] to ./pyproject.toml"
            )
        config = found[0]
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        return templates_from_config(_read_file(path), source=path)
    if isinstance(config, MappingABC):
        return templates_from_config(config)
    templates = getattr(config, "templates", None)
    if isinstance(templates, MappingABC):
        if all(isinstance(t, MessageTemplate) for t in templates.values()):
            return dict(templates)
        return templates_from_config({"templates": templates}, source=str(getattr(config, "source", "<config>")))
    source = getattr(config, "source", None)
    if isinstance(source, str) and os.path.isfile(source):
        return templates_from_config(_read_file(source), source=source)
    raise AlertConfigurationError(
        f"config must be a mapping, a path or a loaded configuration, got a {type(config).__name__}"
    )


def create_alert_from_template(name: str, variables: Mapping[str, Any] | None = None, *, config: Any = None) -> Alert:
    """An :class:`~alert_infra.Alert` whose title and message are the ``[templates.NAME]``
    template rendered with ``variables``.

    Variables named in :data:`RESERVED_VARIABLES` (``severity``, ``source``, ``tags``,
    ``metadata``, ``links``...) also set that field of the alert; the template sees every
    variable. ``config`` is read as :func:`load_templates` reads it (``None``: the process's
    configuration file). Same as ``Alert.from_template(name, config=config, **variables)``; this
    form takes a variable called ``config`` or ``name``.

    Raises:
        AlertConfigurationError: an unknown template (with a "did you mean"), a missing variable
            (named), or any template error (naming the template and line).
        AlertValidationError: a reserved variable that is not a valid alert field.
    """
    from .alert import Alert  # the alert <-> templates circle (tests/test_layers.py LOOPS)

    if variables is not None and not isinstance(variables, MappingABC):
        raise AlertConfigurationError(f"variables must be a mapping, got a {type(variables).__name__}")
    values = dict(variables or {})
    templates = load_templates(config)
    template = templates.get(name) if isinstance(name, str) else None
    if template is None:
        known = ", ".join(sorted(templates)) or "none"
        raise AlertConfigurationError(
            f"no template named {_clean(name, 80)!r}{did_you_mean(name, templates)} (known: {known})"
        )
    title, body = template.render(values)
    fields = {key: values[key] for key in RESERVED_VARIABLES if key in values}
    return Alert(title=title, message=body, **fields)
