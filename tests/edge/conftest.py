"""Edge tests: the in-process agent harness (:mod:`tests.support.harness`)."""

from tests.support.harness import harness

__all__ = ["harness"]
