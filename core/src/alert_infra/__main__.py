"""``python -m alert_infra``: the ``alert-infra`` command line."""

from .cli import main

raise SystemExit(main())
