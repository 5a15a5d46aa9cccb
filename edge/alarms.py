"""Conditions an operator must see, as raised/cleared transitions on the ``alarm`` topic.

:class:`AlarmBoard` keeps what is raised now and the transitions not yet handed to
the link. A transition is published at QoS 1 when the link takes it; while offline
transitions wait (the latest per code), and after every reconnect the raised ones
are sent again, because an alarm is a state, not an event. Alarms are not money:
they live in memory, and a restart re-raises whatever is still true.

Codes (``code[:subject]``): ``journal_full`` (critical: weighings refused),
``scale_offline:<scale>``, ``port_error:<device>``, ``device_fault:<device>`` (its
input made its handling fail; see :meth:`edge.agent.Agent.handle`),
``sensor_fault:<container>``, ``heat:<container>`` (critical), ``record_rejected``
(critical: the server refused a record), ``clock_unsynced`` (info), ``ack_mismatch``
(warning: an ack named no journal record by kind, seq and hash — forged or
misdirected; cleared once matching acks flow again and none has mismatched for ten
minutes).

The agent numbers each transition with a per-device counter and signs it when it
hands it to the link (:meth:`edge.agent.Agent._seal_alarm`), so the server can tell
a replayed old transition from the latest one.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.clock import Clock
from edge.protocol import Alarm, AlarmState, format_ts


@dataclass(frozen=True, slots=True)
class Raised:
    message: str
    severity: str


class AlarmBoard:
    def __init__(self, device_id: str, boot_id: str, clock: Clock) -> None:
        self.device_id = device_id
        self.boot_id = boot_id
        self.clock = clock
        self.raised: dict[str, Raised] = {}
        self._unsent: dict[str, Alarm] = {}

    def _alarm(self, code: str, state: AlarmState, message: str, severity: str) -> Alarm:
        return Alarm(
            device_id=self.device_id,
            boot_id=self.boot_id,
            ts=format_ts(self.clock.now()),
            code=code[:64],
            state=state,
            message=message[:512],
            severity=severity,
        )

    def raise_(self, code: str, message: str, severity: str = "warning") -> bool:
        """Raise ``code``; False if it already is (same message: nothing to say)."""
        current = self.raised.get(code)
        if current is not None and current.message == message:
            return False
        self.raised[code] = Raised(message, severity)
        self._unsent[code] = self._alarm(code, AlarmState.RAISED, message, severity)
        return True

    def clear(self, code: str, message: str = "cleared") -> bool:
        current = self.raised.pop(code, None)
        if current is None:
            return False
        self._unsent[code] = self._alarm(code, AlarmState.CLEARED, message, current.severity)
        return True

    def is_raised(self, code: str) -> bool:
        return code in self.raised

    def unsent(self) -> list[Alarm]:
        return list(self._unsent.values())

    def sent(self, alarm: Alarm) -> None:
        if self._unsent.get(alarm.code) is alarm:
            del self._unsent[alarm.code]

    def resend_raised(self) -> None:
        """After a reconnect: every raised alarm goes out again."""
        for code, raised in self.raised.items():
            self._unsent.setdefault(
                code, self._alarm(code, AlarmState.RAISED, raised.message, raised.severity)
            )
