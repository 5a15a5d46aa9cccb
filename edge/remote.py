"""Remote configuration: desired settings on the retained ``config`` topic, signed by the server.

The server publishes ``{"device_id", "revision": n, "issued_at", "settings": {...},
"sig"}`` retained on ``epr/v1/{device}/config``; ``sig`` is the server's Ed25519
signature of the rest (:meth:`edge.protocol.ConfigDesired.signing_bytes`), made with
the configuration key whose public half was pinned on the device at provisioning
(:meth:`edge.config.AgentConfig.server_key`). ``settings`` overlays the local TOML
configuration::

    {"health_interval_s": 30,
     "devices": {"s1": {"min_load_kg": "12", "category": "tyres"},
                 "c1": {"full_pct": "85"}}}

Before anything is applied an offer must be signed with the pinned key (none pinned:
nothing is applied at all), for this device, and newer than every signed revision
seen so far; a revision refused or reverted once is never applied again. Only tuning
keys can be changed remotely (:data:`TUNABLE`); ports, pins, ids, keys and the broker
stay with the file on the device, because a wrong one would cut the device off. The
settings that change money keep bounds (:func:`edge.protocol.settings_problems`, and
here: a tare below the scale's capacity, a minimum load above its zero band, a
category this device's file names). A revision is validated exactly like the file
(same messages, prefixed ``settings.``), applied atomically by the agent (all of it or
none), journalled, reported on ``config/reported``, and kept as a *trial*: only after
it has run for ``config_trial_s`` does it become last-known-good. If the agent
restarts before that (a crash, the watchdog), the trial is dropped, the
last-known-good is used again and the revision is reported as reverted — and never
applied again. A last-known-good that the pinned key does not verify (one applied
before keys were pinned) is dropped at start-up.

State (``data_dir``): ``remote-config.json`` = {"revision", "settings", "desired",
"rejected", "highest"} (last-known-good; ``desired`` is the signed message),
``remote-config.trial.json`` = {"revision", "settings", "desired"}.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from edge.config import AgentConfig, ConfigError, ScaleConfig, parse_config
from edge.evidence import PublicKey
from edge.protocol import (
    CONFIG_TUNABLE,
    CONFIG_TUNABLE_TOP,
    ConfigDesired,
    ProtocolError,
    decode_config,
    encode,
    remote_setting_problem,
)

log = logging.getLogger(__name__)

TUNABLE_TOP = CONFIG_TUNABLE_TOP
TUNABLE = CONFIG_TUNABLE
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
                        continue
                    problem = remote_setting_problem(name, new)
                    if problem is None and name == "category":
                        allowed = base.allowed_categories()
                        if new not in allowed:
                            problem = (
                                f"{new!r} is not a category of this device"
                                f" ({', '.join(sorted(allowed)) or 'none'})"
                            )
                    if problem is not None:
                        problems.append(f"{where}.{name}: {problem}")
                    else:
                        dev[name] = new
        elif key in TUNABLE_TOP:
            data[key] = value
        else:
            problems.append(f"settings.{key}: cannot be changed remotely")
    if problems:
        raise ConfigError(problems)
    try:
        config = parse_config(data, "settings")
    except ConfigError as exc:
        raise ConfigError([_rekey(p, data) for p in exc.problems]) from None
    problems = [p for scale in config.scales() for p in _scale_bounds(scale, settings)]
    if problems:
        raise ConfigError(problems)
    return config


def _scale_bounds(scale: ScaleConfig, settings: dict[str, Any]) -> list[str]:
    """The bounds of a scale's money settings that depend on the scale itself."""
    changed = settings.get("devices", {}).get(scale.id, {})
    where = f"settings.devices.{scale.id}"
    problems = []
    capacity = scale.capacity_kg
    if "tare_kg" in changed and capacity is not None and scale.tare_kg >= capacity:
        problems.append(
            f"{where}.tare_kg: {scale.tare_kg} kg is not below the scale's capacity"
            f" of {scale.capacity_kg} kg"
        )
    if "min_load_kg" in changed or "zero_band_kg" in changed:
        key = "min_load_kg" if "min_load_kg" in changed else "zero_band_kg"
        if scale.min_load_kg <= scale.zero_band_kg:
            problems.append(
                f"{where}.{key}: the minimum load ({scale.min_load_kg} kg) must be above"
                f" the zero band ({scale.zero_band_kg} kg)"
            )
        if scale.capacity_kg is not None and scale.min_load_kg >= scale.capacity_kg:
            problems.append(
                f"{where}.{key}: the minimum load ({scale.min_load_kg} kg) is not below the"
                f" scale's capacity of {scale.capacity_kg} kg"
            )
    return problems


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


class Refusal(StrEnum):
    """Why an offered revision was not applied (the first word of the reported reason)."""

    NO_KEY = "no_key"
    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    SIGNATURE = "signature"
    DEVICE = "device"
    STALE = "stale"
    REPLAYED = "replayed"
    SETTINGS = "settings"
    JOURNAL = "journal"
    REVERTED = "reverted"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with an offered revision: apply ``config`` (if set) and report."""

    revision: int
    applied: bool
    reason: str | None = None
    config: AgentConfig | None = None
    refusal: Refusal | None = None
    desired: ConfigDesired | None = None
    """The signed message behind an applied ``config`` (journalled before it is used)."""


def refuse(revision: int, refusal: Refusal, detail: str) -> Decision:
    """A refusal, reported as ``<refusal>: <detail>``."""
    return Decision(revision, False, f"{refusal.value}: {detail}"[:512], refusal=refusal)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class RemoteConfig:
    def __init__(self, base: AgentConfig, server_key: PublicKey | None = None) -> None:
        self.base = base
        self.server_key = server_key
        self.good_path = base.data_dir / "remote-config.json"
        self.trial_path = base.data_dir / "remote-config.trial.json"
        self.revision = 0
        self.settings: dict[str, Any] = {}
        self.rejected: list[int] = []
        self.trial: int | None = None
        self._trial_settings: dict[str, Any] = {}
        self._good_desired: ConfigDesired | None = None
        self._trial_desired: ConfigDesired | None = None
        self._highest = 0

    @property
    def in_force(self) -> int | None:
        """The remote revision the agent runs with (on trial or last-known-good), if any."""
        return self.trial or self.revision or None

    @property
    def highest(self) -> int:
        """The highest validly signed revision this device has seen."""
        return max(self._highest, self.revision, self.trial or 0, *self.rejected)

    def _load(self, path: Path) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("%s: unreadable (%s); ignored", path, exc)
            return None
        return data

    def _signed(self, saved: dict[str, Any]) -> ConfigDesired | None:
        """The signed message a saved revision was applied from, if it still verifies."""
        text = saved.get("desired")
        if not isinstance(text, str) or self.server_key is None:
            return None
        try:
            desired = decode_config(text.encode())
        except ProtocolError:
            return None
        if self.check(desired) is not None:
            return None
        if desired.revision != saved.get("revision") or desired.settings != saved.get("settings"):
            return None
        return desired

    def startup(self) -> tuple[AgentConfig, list[Decision]]:
        """The configuration to start with, and reports (a reverted trial, a dropped one)."""
        good = self._load(self.good_path) or {}
        self.revision = int(good.get("revision", 0))
        self.settings = dict(good.get("settings", {}))
        # Before configurations were signed (no "highest" kept) refused revisions were
        # anyone's: they must not hold back the server's numbering.
        signed_era = "highest" in good
        rejected = good.get("rejected", []) if signed_era else []
        self.rejected = [int(r) for r in rejected][-MAX_REJECTED:]
        self._highest = int(good.get("highest", 0))
        self._good_desired = self._signed(good) if self.revision else None
        reports = []
        trial = self._load(self.trial_path)
        if trial is not None:
            reverted = int(trial.get("revision", 0))
            if "desired" in trial:  # a signed revision: never applied again
                self.rejected = [*self.rejected, reverted][-MAX_REJECTED:]
            self._save_good()
            self.trial_path.unlink(missing_ok=True)
            reason = (
                f"reverted to revision {self.revision}: the agent restarted before"
                f" revision {reverted} had run {self.base.config_trial_s:g} s"
            )
            log.error("%s", reason)
            reports.append(refuse(reverted, Refusal.REVERTED, reason))
        if self.revision and self._good_desired is None:
            dropped = self.revision
            detail = (
                f"last-known-good revision {dropped} is not signed by the pinned server"
                " key; running on the file's settings"
            )
            log.error("%s", detail)
            self.revision, self.settings = 0, {}  # unsigned: it does not count as seen
            self._save_good()
            reports.append(refuse(dropped, Refusal.UNSIGNED, detail))
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
                self.revision, self.settings, self._good_desired = 0, {}, None
        return config, reports

    def check(self, desired: ConfigDesired) -> Decision | None:
        """Why ``desired`` is not a message of the server for this device, or None."""
        rev = desired.revision
        if self.server_key is None:
            return refuse(
                rev,
                Refusal.NO_KEY,
                "no server configuration key is pinned on this device; remote"
                " configuration is refused (epr-edge provision --server-key)",
            )
        if desired.sig is None or desired.device_id is None or desired.issued_at is None:
            return refuse(rev, Refusal.UNSIGNED, "the message is not signed by the server")
        if not self.server_key.verify(desired.signing_bytes(), desired.sig):
            return refuse(rev, Refusal.SIGNATURE, "does not verify with the pinned server key")
        if desired.device_id != self.base.device_id:
            return refuse(
                rev,
                Refusal.DEVICE,
                f"signed for device {desired.device_id}, not {self.base.device_id}",
            )
        return None

    def offer(self, desired: ConfigDesired) -> Decision:
        """Decide on an offered revision; nothing changes until :meth:`start_trial`."""
        refused = self.check(desired)
        if refused is not None:
            return refused
        rev = desired.revision
        current = self._trial_desired if self.trial else self._good_desired
        if current is not None and rev == current.revision:
            if desired.sig == current.sig:
                return Decision(rev, True, "already in force")  # the retained copy again
            return refuse(
                rev,
                Refusal.REPLAYED,
                f"revision {rev} is in force with other settings; send a new revision",
            )
        if rev in self.rejected:
            return refuse(rev, Refusal.REPLAYED, f"revision {rev} was refused or reverted earlier")
        if rev <= self.highest:
            return refuse(
                rev, Refusal.STALE, f"revision {rev} is not above {self.highest}, the highest seen"
            )
        try:
            config = overlay(self.base, desired.settings)
        except ConfigError as exc:
            self._highest = max(self._highest, rev)
            self.rejected = [*self.rejected, rev][-MAX_REJECTED:]
            self._save_good()
            return Decision(rev, False, "; ".join(exc.problems)[:512], refusal=Refusal.SETTINGS)
        return Decision(rev, True, None, config, desired=desired)

    def start_trial(self, decision: Decision) -> None:
        """The revision of ``decision`` is journalled: it runs now, on trial."""
        desired = decision.desired
        assert desired is not None
        text = encode(desired).decode()
        _write_json(
            self.trial_path,
            {"revision": desired.revision, "settings": desired.settings, "desired": text},
        )
        self.trial = desired.revision
        self._highest = max(self._highest, desired.revision)
        self._trial_settings = desired.settings
        self._trial_desired = desired

    def confirm(self) -> int | None:
        """The trial has run long enough: it becomes last-known-good. Returns its revision."""
        if self.trial is None:
            return None
        self.revision, self.settings = self.trial, self._trial_settings
        self._good_desired = self._trial_desired
        self.trial, self._trial_desired = None, None
        self._save_good()
        self.trial_path.unlink(missing_ok=True)
        return self.revision

    def _save_good(self) -> None:
        desired = self._good_desired if self.revision else None
        _write_json(
            self.good_path,
            {
                "revision": self.revision,
                "settings": self.settings,
                "desired": encode(desired).decode() if desired is not None else None,
                "rejected": self.rejected,
                "highest": self.highest,
            },
        )
