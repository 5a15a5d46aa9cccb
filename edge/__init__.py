"""Edge agent: runs on a Raspberry Pi at a reception point or in a container.

Nothing in this package imports ``server`` or ``firmware_sim``; simulators are found
through the ``epr.ports`` entry point (see :mod:`edge.ports`).
"""

__version__ = "0.1.0"
