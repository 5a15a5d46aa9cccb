"""Apprise, loaded once and quietly.

Apprise's e-mail plugin imports the standard library's ``imghdr``, deprecated since
Python 3.11 (removed in 3.13, where Apprise carries its own copy); the warning says
nothing about this server, so it is silenced at the one import.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType


def apprise() -> ModuleType:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*imghdr", category=DeprecationWarning)
        module = importlib.import_module("apprise")
        importlib.import_module("apprise.utils.pgp")
    return module
