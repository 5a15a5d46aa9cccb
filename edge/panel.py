"""The operator's panel: category buttons and one status LED, on GPIO through gpiozero.

:class:`Indicator` (pure) decides what the LED shows for the scales a panel serves:

==========  =====================================================================
ERROR       fast blink: weighings are refused (storage full); never silently
WAITING     slow blink: a settled load waits for a badge, plate or category
RECORDED    three quick flashes after a weighing (or an entry pass) is committed
FAULT       a short blink every two seconds: a device the panel serves (its
            scale, or a badge or plate reader for it) has a failing port or input
            that raised (``port_error``/``device_fault`` alarms)
READY       steady: a category is known (fixed or chosen) for every scale served
OFF         no category chosen yet
==========  =====================================================================

FAULT ranks below WAITING and RECORDED: on a panel serving two scales, the one
still working keeps telling its operator "waiting" and "recorded".

:class:`GpioPanel` drives real pins (gpiozero imported only when a panel is
configured); tests hand it gpiozero's ``MockFactory``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from edge.config import PanelConfig


class LedState(StrEnum):
    OFF = "off"
    READY = "ready"
    WAITING = "waiting"
    RECORDED = "recorded"
    FAULT = "fault"
    ERROR = "error"


FLASH_S = 1.0  # how long RECORDED shows before the LED returns to its steady state


class Indicator:
    """What the LED should show now, from the agent's state (no I/O)."""

    def __init__(self) -> None:
        self.flash_until = 0.0

    def flash(self, now: float) -> None:
        self.flash_until = now + FLASH_S

    def state(
        self, *, now: float, refusing: bool, waiting: bool, ready: bool, faulted: bool = False
    ) -> LedState:
        if refusing:
            return LedState.ERROR
        if waiting:
            return LedState.WAITING
        if now < self.flash_until:
            return LedState.RECORDED
        if faulted:
            return LedState.FAULT
        return LedState.READY if ready else LedState.OFF


class Panel(Protocol):
    state: LedState | None
    """What the LED shows now (None before the first :meth:`show`)."""

    def show(self, state: LedState) -> None: ...

    def close(self) -> None: ...


class GpioPanel:
    """Buttons call ``on_press(category)`` (on gpiozero's thread); the LED shows states."""

    def __init__(
        self,
        cfg: PanelConfig,
        on_press: Callable[[str], None],
        *,
        pin_factory: Any = None,
    ) -> None:
        from gpiozero import LED, Button

        self.state: LedState | None = None
        self.buttons = []
        for category, pin in cfg.buttons.items():
            button = Button(pin, bounce_time=cfg.bounce_s or None, pin_factory=pin_factory)
            button.when_pressed = lambda _device, c=category: on_press(c)
            self.buttons.append(button)
        self.led = LED(cfg.led_pin, pin_factory=pin_factory) if cfg.led_pin is not None else None

    def show(self, state: LedState) -> None:
        if state is self.state:
            return
        self.state = state
        led = self.led
        if led is None:
            return
        if state is LedState.ERROR:
            led.blink(on_time=0.1, off_time=0.1)
        elif state is LedState.WAITING:
            led.blink(on_time=0.5, off_time=0.5)
        elif state is LedState.RECORDED:
            led.blink(on_time=0.15, off_time=0.15, n=3)
        elif state is LedState.FAULT:
            led.blink(on_time=0.2, off_time=1.8)
        elif state is LedState.READY:
            led.on()
        else:
            led.off()

    def close(self) -> None:
        for button in self.buttons:
            button.close()
        if self.led is not None:
            self.led.close()
