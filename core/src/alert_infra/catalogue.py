"""The type catalogue: every transport type and its options, read from the classes themselves.

``alert-infra types`` prints it, and configuration errors use the same data for their "did you
mean" suggestions, so what users read and what the configuration accepts cannot drift apart.

Where each field comes from, for a transport class:

* the options: the constructor's keyword parameters (``name`` excluded: a channel's name is its
  table's name), in signature order; ``required`` when a parameter has no default;
* ``secret``: the option is one of the class's ``secret_fields``, or its name is one that
  redaction treats as sensitive (:func:`alert_infra.security.is_sensitive_key`);
* ``help``: the option's entry in the ``Args:`` section (Google style) of the class docstring or of
  ``__init__``'s, or a ``:param name:`` line (Sphinx style), first sentence, on one line;
* ``summary``: the first line of the class docstring.

A class may instead declare ``config_options = {"option": "help", ...}`` to give the help texts
itself; the signature still decides which options exist. A constructor that takes ``**kwargs``
is listed with ``accepts_any=True`` (its options cannot be known).
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from .security import REDACTED, guarded_repr, is_sensitive_key

__all__ = ["OptionInfo", "TypeInfo", "catalogue", "describe_type", "option_help"]

_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Keyword Arguments):\s*$")
_ENTRY = re.compile(r"^(\s*)\*{0,2}([A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX = re.compile(r"^\s*:param\s+(?:[^:]*\s)?([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$")
_HELP_MAX = 160
#: Help for options every transport may take, when its own docstring says nothing about them.
COMMON_HELP = {
    "format": "a formatter name (default, compact, or one a plugin registers).",
    "timeout": "seconds one try may take (connect and read).",
    "http_client": "code only: an object with post(url, *, json, headers, timeout) (0.1.x injection point).",
    "stream": 'a text stream, or "stdout" / "stderr" in configuration.',
}


class OptionInfo:
    """One option of a transport type (see the module docstring for where each field comes from)."""

    __slots__ = ("default", "help", "name", "required", "secret")

    def __init__(self, name: str, *, required: bool, default: Any, secret: bool, help: str) -> None:
        self.name = name
        self.required = required
        self.default = default
        self.secret = secret
        self.help = help

    def to_dict(self) -> dict[str, Any]:
        default = self.default
        if not isinstance(default, (str, int, float, bool, type(None))):
            default = repr(default)  # a JSON document must stay JSON; never an object
        return {
            "name": self.name,
            "required": self.required,
            "default": None if self.required else default,
            "secret": self.secret,
            "help": self.help,
        }

    @guarded_repr
    def __repr__(self) -> str:
        return f"OptionInfo({self.name!r}, required={self.required}, secret={self.secret})"


class TypeInfo:
    """One transport type: its name, what provides it, a one-line summary and its options."""

    __slots__ = ("accepts_any", "name", "options", "provider", "summary", "url_form")

    def __init__(
        self,
        name: str,
        *,
        provider: str,
        summary: str,
        options: list[OptionInfo],
        accepts_any: bool = False,
        url_form: str = "",
    ) -> None:
        self.name = name
        self.provider = provider
        self.summary = summary
        self.options = options
        self.accepts_any = accepts_any
        #: How ``alert-infra send --to`` writes a channel of this type (``""``: it has no URL form).
        self.url_form = url_form

    def option(self, name: str) -> OptionInfo | None:
        return next((o for o in self.options if o.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "summary": self.summary,
            "accepts_any": self.accepts_any,
            "url_form": self.url_form or None,
            "options": [o.to_dict() for o in self.options],
        }

    @guarded_repr
    def __repr__(self) -> str:
        return f"TypeInfo({self.name!r}, options={[o.name for o in self.options]})"


_LITERAL = re.compile(r"``([^`]+)``")
_ROLE = re.compile(r":[a-z]+:`~?([^`<]+?)(?:\s*<[^>]*>)?`")


def _one_line(text: str) -> str:
    # Plain text for a terminal and for --json: reST literals and roles lose their markup.
    text = _ROLE.sub(r"\1", _LITERAL.sub(r"\1", " ".join(text.split())))
    # the first sentence: a period followed by a space and a capital, or the end
    match = re.search(r"(?<=[.!?])\s+(?=[A-Z(`])", text)
    if match:
        text = text[: match.start()]
    return text if len(text) <= _HELP_MAX else text[: _HELP_MAX - 1] + "…"


def option_help(doc: str | None) -> dict[str, str]:
    """``{option: one-line help}`` from a docstring's ``Args:`` section or ``:param x:`` lines."""
    found: dict[str, str] = {}
    if not doc or not isinstance(doc, str):  # a class may set __doc__ to anything (a property, bytes)
        return found
    lines = inspect.cleandoc(doc).splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        sphinx = _SPHINX.match(line)
        if sphinx:
            words = [sphinx.group(2)]
            index += 1
            while index < len(lines) and lines[index].startswith((" ", "\t")) and not _SPHINX.match(lines[index]):
                words.append(lines[index].strip())
                index += 1
            found.setdefault(sphinx.group(1), _one_line(" ".join(words)))
            continue
        section = _SECTION.match(line)
        if not section:
            index += 1
            continue
        base = len(section.group(1))
        index += 1
        entry_indent: int | None = None
        current: str | None = None
        text: list[str] = []
        while index < len(lines):
            raw = lines[index]
            if raw.strip() == "":
                index += 1
                continue
            indent = len(raw) - len(raw.lstrip())
            if indent <= base:
                break  # the section ended (Raises:, Returns:, prose)
            entry = _ENTRY.match(raw)
            if entry and (entry_indent is None or indent == entry_indent):
                if current is not None:
                    found.setdefault(current, _one_line(" ".join(text)))
                entry_indent = indent
                current, text = entry.group(2), [entry.group(3)]
            elif current is not None:
                text.append(raw.strip())
            index += 1
        if current is not None:
            found.setdefault(current, _one_line(" ".join(text)))
    return found


def describe_type(name: str, cls: Any, *, provider: str = "") -> TypeInfo:
    """The :class:`TypeInfo` of transport class ``cls`` registered as type ``name``."""
    doc = inspect.getdoc(cls) or ""
    summary = _one_line(doc.split("\n\n", 1)[0]) if doc else ""
    helps = option_help(getattr(cls, "__doc__", None))
    init = getattr(cls, "__init__", None)
    for key, value in option_help(getattr(init, "__doc__", None)).items():
        helps.setdefault(key, value)
    declared = getattr(cls, "config_options", None)
    if isinstance(declared, dict):
        helps.update({str(k): _one_line(str(v)) for k, v in declared.items()})
    declared_secrets = getattr(cls, "secret_fields", ()) or ()
    secret_fields = (
        {str(f) for f in declared_secrets} if isinstance(declared_secrets, (tuple, list, set, frozenset)) else set()
    )
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        params = []
    options: list[OptionInfo] = []
    accepts_any = False
    for param in params:
        if param.kind is param.VAR_KEYWORD:
            accepts_any = True
            continue
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) or param.name == "name":
            continue
        required = param.default is param.empty
        secret = param.name in secret_fields or is_sensitive_key(param.name)
        default = None if required else param.default
        if secret and default not in (None, ""):
            default = REDACTED  # a plugin's default token or URL is still a secret: never printed
        options.append(
            OptionInfo(
                param.name,
                required=required,
                default=default,
                secret=secret,
                help=helps.get(param.name) or COMMON_HELP.get(param.name, ""),
            )
        )
    return TypeInfo(
        name, provider=provider, summary=summary, options=options, accepts_any=accepts_any, url_form=_url_form(cls)
    )


def _url_form(cls: Any) -> str:
    """The type's ``url_form`` when it declares one, else its ``url_schemes`` as ``scheme://…``."""
    form = getattr(cls, "url_form", None)
    if isinstance(form, str) and form.strip():
        return _one_line(form)
    schemes = getattr(cls, "url_schemes", None)
    if isinstance(schemes, (tuple, list)):
        return ", ".join(f"{s}://…" for s in schemes if isinstance(s, str) and s)
    return ""


def catalogue(host: Any = None) -> list[TypeInfo]:
    """Every available transport type (every plugin loaded), sorted by name.

    A type whose plugin fails to load is not listed here (``alert-infra plugins`` shows why).
    """
    from .plugins import get_plugin_host  # catalogue() only: describe_type(), which config uses, needs no plugin host

    host = host or get_plugin_host()
    infos = []
    for type_name in host.transport_types():
        try:
            cls = host.transport_class(type_name)
        except Exception:  # noqa: BLE001, S112 - a broken or ambiguous type is reported by `plugins`
            continue
        record = host.transports.entries.get(type_name, (None, None))[0]
        provider = getattr(record, "label", "") if record is not None else ""
        infos.append(describe_type(type_name, cls, provider=str(provider)))
    return infos
