"""``python -m alert_infra.cli``: the same as ``python -m alert_infra`` (it ran when this was a module).

Guarded, unlike ``alert_infra/__main__.py``: tools that import every module of the package (the repr
scan of the tests, documentation builders) must not run the command line by importing this file.
"""

from __future__ import annotations

from ._main import main

if __name__ == "__main__":
    raise SystemExit(main())
