"""Remote configuration: desired settings on the retained ``config`` topic.

The server publishes ``{"revision": n, "settings": {...}}`` retained on
``epr/v1/{device}/config``. ``settings`` overlays the local TOML configuration::

    {"health_interval_s": 30,
     "devices": {"s1": {"min_load_kg": "12", "category": "tyres"},
                 "c1": {"full_pct": "85"}}}

Only tuning keys can be changed remotely (:data:`TUNABLE`); ports, pins, ids and
the broker stay with the file on the device, because a wrong one would cut the
device off. A revision is validated exactly like the file (same messages, prefixed
``settings.``), applied atomically by the agent (all of it or none), reported on
``config/reported``, and kept as a *trial*: only after it has run for
``config_trial_s`` does it become last-known-good. If the agent restarts before that
(a crash, the watchdog), the trial is dropped, the last-known-good is used again and
the revision is reported as reverted — and never applied again.

State (``data_dir``): ``remote-config.json`` = {"revision", "settings", "rejected"}
(last-known-good), ``remote-config.trial.json`` = {"revision", "settings"}.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.config import AgentConfig, ConfigError, parse_config
from edge.protocol import ConfigDesired

log = logging.getLogger(__name__)

TUNABLE_TOP = frozenset({"health_interval_s", "journal_max_unacked", "min_free_mb", "fill_ttl_h"})
TUNABLE: dict[str, frozenset[str]] = {
    "scale": frozenset(
        {
            "category",
            "badge",
            "min_load_kg",
            "settle_readings",
            "zero_band_kg",
            "tare_source",
            "tare_kg",
            "identity_wait_s",
            "pass_max_age_h",
            "offline_after_s",
            "poll_interval_s",
        }
    ),
    "rfid": frozenset({"hold_s"}),
    "plate": frozenset({"hold_s"}),
    "panel": frozenset({"hold_s"}),
    "fill": frozenset(
        {
            "full_pct",
            "hysteresis_pct",
            "emptied_drop_pct",
            "emptied_window_s",
            "emptied_confirm",
            "report_change_pct",
            "report_interval_s",
            "fault_samples",
            "silence_fault_s",
            "link_window_s",
        }
    ),
}
MAX_REJECTED = 50


def overlay(base: AgentConfig, settings: dict[str, Any]) -> AgentConfig:
    """``base`` with ``settings`` applied, validated as a whole; ConfigError otherwise."""
    problems: list[str] = []
    data = base.model_dump(mode="python")
    by_id = {dev["id"]: dev for dev in data["devices"]}
    for key, value in settings.items():
        if key == "devices":
            if not isinstance(value, dict):
                problems.append("settings.devices: expected an object of device id -> settings")
                continue
            for dev_id, changes in value.items():
                where = f"settings.devices.{dev_id}"
                dev = by_id.get(dev_id)
                if dev is None:
                    problems.append(f"{where}: no such device on {base.device_id}")
                    continue
                if not isinstance(changes, dict):
                    problems.append(f"{where}: expected an object")
                    continue
                for name, new in changes.items():
                    if name not in TUNABLE[dev["type"]]:
                        problems.append(f"{where}.{name}: cannot be changed remotely")
                    else:
                        dev[name] = new
        elif key in TUNABLE_TOP:
            data[key] = value
        else:
            problems.append(f"settings.{key}: cannot be changed remotely")
    if problems:
        raise ConfigError(problems)
    try:
        return parse_config(data, "settings")
    except ConfigError as exc:
        raise ConfigError([_rekey(p, data) for p in exc.problems]) from None


def _rekey(problem: str, data: dict[str, Any]) -> str:
    """``settings: devices.0.min_load_kg: …`` -> ``settings.devices.s1.min_load_kg: …``."""
    _, _, rest = problem.partition(": ")
    key, _, reason = rest.partition(": ")
    parts = key.split(".")
    if len(parts) > 1 and parts[0] == "devices" and parts[1].isdigit():
        index = int(parts[1])
        if index < len(data["devices"]):
            parts[1] = data["devices"][index]["id"]
    return f"settings.{'.'.join(parts)}: {reason}"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with an offered revision: apply ``config`` (if set) and report."""

    revision: int
    applied: bool
    reason: str | None = None
    config: AgentConfig | None = None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        # Numbers in a config message arrive as exact Decimals; keep them exact as text.
        json.dump(data, fh, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class RemoteConfig:
    def __init__(self, base: AgentConfig) -> None:
        self.base = base
        self.good_path = base.data_dir / "remote-config.json"
        self.trial_path = base.data_dir / "remote-config.trial.json"
        self.revision = 0
        self.settings: dict[str, Any] = {}
        self.rejected: list[int] = []
        self.trial: int | None = None
        self._trial_settings: dict[str, Any] = {}

    def _load(self, path: Path) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("%s: unreadable (%s); ignored", path, exc)
            return None
        return data

    def startup(self) -> tuple[AgentConfig, Decision | None]:
        """The configuration to start with, and a report if a trial was reverted."""
        good = self._load(self.good_path) or {}
        self.revision = int(good.get("revision", 0))
        self.settings = dict(good.get("settings", {}))
        self.rejected = [int(r) for r in good.get("rejected", [])][-MAX_REJECTED:]
        report = None
        trial = self._load(self.trial_path)
        if trial is not None:
            reverted = int(trial.get("revision", 0))
            self.rejected.append(reverted)
            self._save_good()
            self.trial_path.unlink(missing_ok=True)
            reason = (
                f"reverted to revision {self.revision}: the agent restarted before"
                f" revision {reverted} had run {self.base.config_trial_s:g} s"
            )
            log.error("%s", reason)
            report = Decision(reverted, False, reason)
        config = self.base
        if self.settings:
            try:
                config = overlay(self.base, self.settings)
            except ConfigError as exc:
                log.error(
                    "last-known-good revision %d no longer fits the local file: %s",
                    self.revision,
                    exc,
                )
                self.revision, self.settings = 0, {}
        return config, report

    def offer(self, desired: ConfigDesired) -> Decision:
        rev = desired.revision
        if rev in self.rejected:
            return Decision(rev, False, f"revision {rev} was reverted earlier; send a new one")
        if rev == self.revision or rev == self.trial:
            return Decision(rev, True, "already applied")
        if rev < self.revision:
            return Decision(rev, False, f"older than the applied revision {self.revision}")
        try:
            config = overlay(self.base, desired.settings)
        except ConfigError as exc:
            self.rejected = [*self.rejected, rev][-MAX_REJECTED:]
            self._save_good()
            return Decision(rev, False, "; ".join(exc.problems)[:512])
        _write_json(self.trial_path, {"revision": rev, "settings": desired.settings})
        self.trial = rev
        self._trial_settings = desired.settings
        return Decision(rev, True, None, config)

    def confirm(self) -> int | None:
        """The trial has run long enough: it becomes last-known-good. Returns its revision."""
        if self.trial is None:
            return None
        self.revision, self.settings = self.trial, self._trial_settings
        self.trial = None
        self._save_good()
        self.trial_path.unlink(missing_ok=True)
        return self.revision

    def _save_good(self) -> None:
        _write_json(
            self.good_path,
            {"revision": self.revision, "settings": self.settings, "rejected": self.rejected},
        )
