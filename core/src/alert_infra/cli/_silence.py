"""``alert-infra silence add | list | expire``: silences kept in the lifecycle's state."""

from __future__ import annotations

import argparse
import time

from ._common import EXIT_OK, UsageError, clean, envelope, print_json, read_config
from ._state import lifecycle_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


def _silence_store(args: argparse.Namespace) -> Any:
    from ..lifecycle import SilenceStore

    config = read_config(args, required=False)
    try:
        spec, options = lifecycle_spec(args, config)
        return SilenceStore(spec, **options)
    except OSError as exc:
        raise UsageError(f"cannot use the silences' state ({type(exc).__name__})") from None


def _silence_json(silence: Any, now: float) -> dict[str, Any]:
    return {**silence.to_dict(), "state": silence.state(now)}


def cmd_silence_add(args: argparse.Namespace, out: TextIO) -> int:
    from ..exceptions import AlertConfigurationError

    author = args.author
    if not author:
        import getpass

        try:
            author = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name in this environment
            author = "unknown"
    store = _silence_store(args)
    try:
        silence = store.create(args.matchers, duration=args.duration, comment=args.comment, created_by=author)
    except AlertConfigurationError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - never str(exc): a Redis error may quote its URL
        raise UsageError(f"the silence could not be stored ({type(exc).__name__})") from None
    finally:
        store.records.close()
    if args.json:
        print_json(envelope("silence", EXIT_OK, id=silence.id, silence=_silence_json(silence, time.time())), out)
    else:
        out.write(silence.id + "\n")
    return EXIT_OK


def cmd_silence_list(args: argparse.Namespace, out: TextIO) -> int:
    store = _silence_store(args)
    now = time.time()
    try:
        found = store.list(active=True, expired=args.expired, now=now)
    except Exception as exc:  # noqa: BLE001 - never str(exc): a Redis error may quote its URL
        raise UsageError(f"the silences could not be read ({type(exc).__name__})") from None
    finally:
        store.records.close()
    if args.json:
        print_json(envelope("silence", EXIT_OK, silences=[_silence_json(s, now) for s in found]), out)
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
    store = _silence_store(args)
    try:
        found = store.get(args.id)
        ended = store.expire(args.id)
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"the silences could not be read ({type(exc).__name__})") from None
    finally:
        store.records.close()
    if found is None:
        raise UsageError(f"no silence {clean(args.id[:100])}")
    if args.json:
        print_json(envelope("silence", EXIT_OK, id=found.id, expired=True, changed=ended), out)
    else:
        out.write(f"silence {found.id} {'expired' if ended else 'had already ended'}\n")
    return EXIT_OK
