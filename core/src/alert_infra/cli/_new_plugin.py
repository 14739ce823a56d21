"""``alert-infra new-plugin NAME``: generate a plugin distribution (the files come from
:mod:`alert_infra.testing._generate`)."""

from __future__ import annotations

import argparse
import os

from ..exceptions import AlertConfigurationError
from ._common import EXIT_OK, UsageError, clean, print_envelope

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO


def cmd_new_plugin(args: argparse.Namespace, out: TextIO) -> int:
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..testing._generate import render_plugin

    try:
        created = render_plugin(args.name, args.directory)
    except AlertConfigurationError as exc:  # NAME or --directory: the command line's mistake
        raise UsageError(f"new-plugin: {exc}") from None
    if args.json:
        print_envelope(out, "new-plugin", EXIT_OK, **created)
        return EXIT_OK
    shown = os.path.relpath(created["path"])
    if shown.startswith(".."):
        shown = created["path"]
    out.write(f"created {created['distribution']} in {clean(shown)}/ (transport type {created['name']!r}):\n")
    for file in created["files"]:
        out.write(f"    {clean(file)}\n")
    # `alert-infra` imports every verb's module: only a verb that uses this loads it
    from ..testing._generate import core_install_spec

    out.write(
        f"next: cd {clean(shown)} && python -m venv .venv && . .venv/bin/activate"
        f" && pip install {clean(core_install_spec())} -e '.[test]' && pytest\n"
    )
    return EXIT_OK
