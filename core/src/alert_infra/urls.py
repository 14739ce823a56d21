"""One-off channels from a URL (``alert-infra send --to slack://…``): which installed transport type
takes a URL, and the transport it builds.

A transport type declares the schemes of its URL form in ``url_schemes`` and builds itself with the
classmethod ``from_url(url, name=None)`` (the contract in DESIGN.md, "More channels"). A type may
also offer ``handles_url(url) -> bool`` for URLs whose schemes it cannot list (the apprise bridge:
apprise knows some 180). Our own declared schemes always win over such a catch-all.

The whole URL is a secret (it carries the token, the webhook path or the password): it is
registered with the redactor before anything parses it, so no error, log line or result shows it.
"""

from __future__ import annotations

from contextvars import ContextVar

from ._checks import did_you_mean
from .exceptions import AlertConfigurationError
from .security import guarded_repr, redact_text, register_secret

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ChannelUrl", "parse_channel_url", "transport_from_url", "url_schemes"]

#: Who owns the secrets :func:`parse_channel_url` registers: set by :func:`transport_from_url` for the
#: call (the URL is then masked while the transport lives, or while its error is reported), ``None``
#: (the life of the process) when a transport's ``from_url`` is called directly.
_URL_OWNER: ContextVar[object] = ContextVar("alert_infra_url_owner", default=None)


class ChannelUrl:
    """A channel URL taken apart (see :func:`parse_channel_url`): ``scheme``, the ``parts`` of
    ``host/path`` split on ``/`` (empty ones dropped, each percent-decoded), ``user`` and
    ``password`` (decoded, or ``None``) and ``query`` (one value per name)."""

    __slots__ = ("parts", "password", "query", "scheme", "user")

    def __init__(
        self, scheme: str, parts: list[str], user: str | None, password: str | None, query: dict[str, str]
    ) -> None:
        self.scheme, self.parts, self.user, self.password, self.query = scheme, parts, user, password, query

    @guarded_repr
    def __repr__(self) -> str:  # never the parts: they are the secret
        return f"ChannelUrl(scheme={self.scheme!r}, parts={len(self.parts)}, query={sorted(self.query)!r})"


def parse_channel_url(url: object, schemes: Any, *, provider: str, form: str, options: Any = ()) -> ChannelUrl:
    """Take apart a channel URL of our own syntax (``slack://T000/B000/XXXX?api_url=…``) for a
    transport's ``from_url``; the whole URL is registered as a secret first.

    Args:
        url: the URL.
        schemes: the schemes the type takes.
        provider: named in errors (``"Slack"``).
        form: the documented form, shown in every error (``"slack://T…/B…/SECRET"``).
        options: the query names allowed; any other is an error naming it.

    Raises:
        AlertConfigurationError: not a string, another scheme, a query name not in ``options``, a
            repeated one. The message shows ``form``, never the URL.
    """
    from urllib.parse import parse_qsl, unquote  # a channel URL only: urllib.parse stays out of a plugin's import

    if isinstance(url, str) and url:
        register_secret(url, owner=_URL_OWNER.get())
    if not isinstance(url, str) or not url.strip():
        raise AlertConfigurationError(f"{provider} URL is required ({form})")
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() not in tuple(schemes):
        raise AlertConfigurationError(f"{provider} URL must start with {next(iter(schemes))}:// ({form})")
    rest, _, fragment = rest.partition("#")
    if fragment:
        raise AlertConfigurationError(f"{provider} URL must not have a #fragment ({form})")
    location, _, query_text = rest.partition("?")
    user = password = None
    if "@" in location.split("/", 1)[0]:
        credentials, _, location = location.partition("@")
        name, colon, secret = credentials.partition(":")
        user, password = unquote(name), (unquote(secret) if colon else None)
    parts = [unquote(p) for p in location.split("/") if p]
    query: dict[str, str] = {}
    for key, value in parse_qsl(query_text, keep_blank_values=True):
        if key not in tuple(options):
            allowed = ", ".join(options) or "none"
            raise AlertConfigurationError(
                f"{provider} URL: unknown parameter {key[:30]!r} (allowed: {allowed}; {form})"
            )
        if key in query:
            raise AlertConfigurationError(f"{provider} URL: parameter {key!r} is given twice ({form})")
        query[key] = value
    return ChannelUrl(scheme.lower(), parts, user, password, query)


def url_schemes(host: Any = None) -> dict[str, str]:
    """``{scheme: transport type}`` for every installed type that declares ``url_schemes`` (every
    plugin is loaded: this is for one-off sends and listings, not a hot path)."""
    # plugins import this module at their top: the host loads only when a URL is resolved
    from .plugins import get_plugin_host

    host = host or get_plugin_host()
    found: dict[str, str] = {}
    for type_name in host.transport_types():
        try:
            cls = host.transport_class(type_name)
        except Exception:  # noqa: BLE001, S112 - a broken type is `alert-infra plugins`' to report
            continue
        schemes = getattr(cls, "url_schemes", ()) or ()
        if isinstance(schemes, (tuple, list)):
            for scheme in schemes:
                if isinstance(scheme, str) and scheme:
                    found.setdefault(scheme.lower(), type_name)
    return found


def transport_from_url(url: str, *, name: str | None = None, host: Any = None) -> Any:
    """The transport a one-off ``url`` asks for, built by its type's ``from_url``.

    The scheme is matched exactly (``webhook+https``), then by its part before ``+`` (``apprise+json``
    → ``apprise``), then each type's ``handles_url`` is asked. The channel is named ``name``, else
    after its type.

    Raises:
        AlertConfigurationError: no scheme, or no installed type takes it (the message lists the
            schemes that are known, suggests the closest, and names the apprise bridge), or the
            type's own ``from_url`` refused the URL. The URL itself is never shown.
    """
    if not isinstance(url, str) or not url.strip():
        raise AlertConfigurationError("--to: a channel URL is required, e.g. slack://T000/B000/XXXX")
    url = url.strip()
    # Owned by a holder for the call, then by the transport built: a process that sends to many
    # URLs does not keep every one of them masked for ever. An error is masked before the holder
    # goes (its text is redacted while the URL is still registered).
    holder = _Holder()
    register_secret(url, owner=holder)
    token = _URL_OWNER.set(holder)
    try:
        transport = _build(url, name, host)
    except AlertConfigurationError as exc:
        error = AlertConfigurationError(redact_text(str(exc)))
    except Exception as exc:  # noqa: BLE001 - a plugin's from_url bug: said, masked, never a traceback
        error = AlertConfigurationError(
            f"--to: the channel could not be built from its URL ({type(exc).__name__}: {redact_text(str(exc))[:200]})"
        )
    else:
        register_secret(url, owner=transport)
        return transport
    finally:
        _URL_OWNER.reset(token)
    raise error from None


class _Holder:
    """Owns a one-off URL's secrets while it is being parsed and built."""


def _build(url: str, name: str | None, host: Any) -> Any:
    # plugins import this module at their top: the host loads only when a URL is resolved
    from .plugins import get_plugin_host

    scheme, sep, _rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme or not all(c.isalnum() or c in "+-." for c in scheme):
        raise AlertConfigurationError("--to: expected a URL with a scheme, such as slack://… or ntfys://…")
    host = host or get_plugin_host()
    known = url_schemes(host)
    type_name = known.get(scheme) or known.get(scheme.split("+", 1)[0])
    if type_name is None:
        for candidate in host.transport_types():
            try:
                cls = host.transport_class(candidate)
            except Exception:  # noqa: BLE001, S112
                continue
            handles = getattr(cls, "handles_url", None)
            if callable(handles):
                try:
                    if handles(url):
                        type_name = candidate
                        break
                except Exception:  # noqa: BLE001, S112 - a plugin's guess never breaks the lookup
                    continue
    if type_name is None:
        hint = did_you_mean(scheme, sorted(known))
        listed = ", ".join(f"{s}://" for s in sorted(known)) or "none: install a channel plugin"
        raise AlertConfigurationError(
            f"--to: no installed channel type takes {scheme}:// URLs{hint}. Known: {listed}. For other"
            " services install the apprise bridge (pip install ./plugins/alert-infra-apprise)"
        )
    cls = host.transport_class(type_name)
    return cls.from_url(url, name=name or type_name)
