"""Emulators that speak the real bytes of the hardware at a site.

Every device is a pyserial-shaped port (``readline``/``read``/``write``/``close``,
``timeout``), usable in-process, through ``sim://`` URLs (entry point ``epr.ports``)
or over TCP (``epr-sim serve``), so the real agent runs unchanged against them.
"""

__version__ = "0.1.0"
