"""A griffe extension (mkdocs.yml) that turns the reST markup of the core's docstrings into Markdown.

The docstrings use Sphinx conventions (``:param x:`` fields, which griffe parses, plus roles such as
``:class:`~alert_infra.DeliveryResult``` and ``.. versionadded::`` directives, which it leaves as
text). Roles become inline code (the last dotted part with ``~``, as Sphinx shows them), directives
become a short italic note, and a paragraph ending in ``::`` (a reST literal block) ends in ``:``
(the indented block below it is already a Markdown code block).
"""

from __future__ import annotations

import re
from typing import Any

try:
    from griffe import Extension
except ImportError:  # tests/test_docs_site.py checks markdown() where griffe is not installed
    Extension = object  # type: ignore[assignment,misc]

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")
_DIRECTIVE = re.compile(r"^(\s*)\.\. (versionadded|versionchanged|deprecated):: *(\S+)(?: +(.*))?$", re.M)
_LITERAL = re.compile(r"(\S)::$", re.M)
_LABELS = {"versionadded": "Added in version", "versionchanged": "Changed in version", "deprecated": "Deprecated since"}


def _role(match: re.Match[str]) -> str:
    short, target = match.groups()
    target = target.strip()
    if "<" in target and target.endswith(">"):  # :class:`text <target>`
        return f"`{target.split('<', 1)[0].strip()}`"
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def _directive(match: re.Match[str]) -> str:
    indent, kind, version, text = match.groups()
    note = f"{indent}*{_LABELS[kind]} {version}"
    return f"{note}: {text}*" if text else f"{note}.*"


_FIELD = re.compile(r"^:(?:param|parameter|arg|type|raises?|returns?|rtype|yields?|var|ivar|cvar)\b", re.M)


def markdown(text: str) -> str:
    """``text`` with reST roles, version directives and literal-block markers made Markdown.

    Version notes move above the ``:param:`` fields: written after them (as the hookspecs do),
    griffe would read them as part of the last field's description.
    """
    text = _ROLE.sub(_role, text)
    notes = [_directive(match).strip() for match in _DIRECTIVE.finditer(text)]
    text = _DIRECTIVE.sub("", text).rstrip()
    if notes:
        field = _FIELD.search(text)
        at = field.start() if field else len(text)
        text = f"{text[:at].rstrip()}\n\n{' '.join(notes)}\n\n{text[at:]}".rstrip()
    return _LITERAL.sub(r"\1:", text)


class SphinxMarkup(Extension):
    """Rewrites each docstring once, when griffe has read it."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
