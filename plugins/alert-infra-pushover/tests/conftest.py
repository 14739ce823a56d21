"""The Pushover plugin's tests share a validating fake of Pushover's API (``pushover_fake.py``, beside
this file). The repository runs pytest with ``--import-mode=importlib``, which puts no test folder on
``sys.path``: this puts this one there, so ``from pushover_fake import ...`` works whether the tests
run alone or with the whole repository (the module's name is unique to this plugin)."""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
