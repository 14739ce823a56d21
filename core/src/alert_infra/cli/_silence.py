"""``alert-infra silence add | list | expire``: silences kept in the lifecycle's state."""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

from ..exceptions import AlertConfigurationError
from ._common import EXIT_OK, UsageError, clean, current_user, print_envelope, read_config
from ._state import silence_store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, TextIO


@contextmanager
def _silences(args: argparse.Namespace, failure: str) -> Iterator[Any]:
    """The silences' store for one verb, closed after it. An error of its state is a usage error:
    ``failure`` and the error's class, never its text (a Redis error may quote its URL)."""
    try:
        store = silence_store(args, read_config(args, required=False))
    except OSError as exc:
        raise UsageError(f"cannot use the silences' state ({type(exc).__name__})") from None
    try:
        yield store
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - see above
        raise UsageError(f"{failure} ({type(exc).__name__})") from None
    finally:
        store.records.close()


def _silence_json(silence: Any, now: float) -> dict[str, Any]:
    return {**silence.to_dict(), "state": silence.state(now)}


def cmd_silence_add(args: argparse.Namespace, out: TextIO) -> int:
    author = current_user(args.author)
    with _silences(args, "the silence could not be stored") as store:
        try:
            silence = store.create(args.matchers, duration=args.duration, comment=args.comment, created_by=author)
        except AlertConfigurationError as exc:
            raise UsageError(str(exc)) from None
    if args.json:
        print_envelope(out, "silence", EXIT_OK, id=silence.id, silence=_silence_json(silence, time.time()))
    else:
        out.write(silence.id + "\n")
    return EXIT_OK


def cmd_silence_list(args: argparse.Namespace, out: TextIO) -> int:
    with _silences(args, "the silences could not be read") as store:
        now = time.time()
        found = store.list(active=True, expired=args.expired, now=now)
    if args.json:
        print_envelope(out, "silence", EXIT_OK, silences=[_silence_json(s, now) for s in found])
        return EXIT_OK
    if not found:
        out.write("no silences\n")
    for silence in found:
        data = silence.to_dict()
        out.write(
            f"{silence.id}  {silence.state(now)}  {data['starts_at']} .. {data['ends_at']}  "
            f"{clean(' '.join(data['matchers']))}  by {clean(data['created_by'] or '-')}: {clean(data['comment'])}\n"
        )
    return EXIT_OK


def cmd_silence_expire(args: argparse.Namespace, out: TextIO) -> int:
    with _silences(args, "the silences could not be read") as store:
        found = store.get(args.id)
        ended = store.expire(args.id)
    if found is None:
        raise UsageError(f"no silence {clean(args.id[:100])}")
    if args.json:
        print_envelope(out, "silence", EXIT_OK, id=found.id, expired=True, changed=ended)
    else:
        out.write(f"silence {found.id} {'expired' if ended else 'had already ended'}\n")
    return EXIT_OK
