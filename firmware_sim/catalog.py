"""Every emulator by name, built from string parameters (URL queries, command lines).

Names: ``scale/ad``, ``scale/toledo``, ``scale/mtsics``, ``rfid/rdm6300``,
``range/maxbotix``. Parameters every device takes: ``rate`` (Hz), ``realtime``
(1/0), ``seed``, and the line faults ``garbage``, ``drop``, ``corrupt``
(probabilities per tick) and ``disconnect_every`` (ticks). Scales take ``loads``
(comma-separated kg, played in order), ``unstable`` (burst probability per stable
tick), ``overload`` (comma-separated kg loads that overload) and ``idle``
(zero/silent); A&D ``kind`` (GS, NT; ``none``: a balance's line without a weight
type, ``ST,+00123.45  g``), ``unit`` (kg, g, t) and ``decimals``; Toledo ``tare``
and ``decimals``; the RDM6300 ``tags`` (comma-separated
ten-hex-digit tags, presented in turn) and ``hold`` (frames per presentation); the
MaxBotix ``mm`` (distance; ``none`` for no target), ``noise`` and ``spikes``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

from firmware_sim.device import Faults, SimDevice
from firmware_sim.scales.script import Load

Params = Mapping[str, str]


def _float(params: Params, key: str, default: float) -> float:
    try:
        return float(params.get(key, default))
    except ValueError:
        raise ValueError(f"{key}={params[key]!r} is not a number") from None


def _int(params: Params, key: str, default: int) -> int:
    try:
        return int(params.get(key, default))
    except ValueError:
        raise ValueError(f"{key}={params[key]!r} is not an integer") from None


def _kg_list(params: Params, key: str) -> list[Decimal]:
    text = params.get(key, "")
    try:
        return [Decimal(x) for x in text.split(",") if x.strip()]
    except InvalidOperation:
        raise ValueError(f"{key}={text!r} is not a list of kg values") from None


def faults(params: Params) -> Faults:
    return Faults(
        garbage_rate=_float(params, "garbage", 0),
        drop_rate=_float(params, "drop", 0),
        corrupt_rate=_float(params, "corrupt", 0),
        disconnect_every=_int(params, "disconnect_every", 0),
    )


def _common(params: Params, timeout: float | None) -> dict[str, object]:
    return {
        "realtime": params.get("realtime", "1") != "0",
        "timeout": timeout,
        "seed": _int(params, "seed", 0),
        "faults": faults(params),
    }


def loads(params: Params) -> list[Load]:
    """The scripted loads of a scale's parameters (``loads``, ``overload``)."""
    loads = [Load(kg) for kg in _kg_list(params, "loads")]
    loads += [Load(kg, overload=True) for kg in _kg_list(params, "overload")]
    return loads


def _scale_args(params: Params, timeout: float | None) -> dict[str, object]:
    return {
        **_common(params, timeout),
        "rate_hz": _float(params, "rate", 10),
        "idle": params.get("idle", "zero"),
        "unstable_rate": _float(params, "unstable", 0),
    }


def _ad(params: Params, timeout: float | None) -> SimDevice:
    from firmware_sim.scales.ad import ADScale

    kind = params.get("kind", "GS")
    return ADScale(
        loads(params),
        kind=None if kind == "none" else kind,
        unit=params.get("unit", "kg"),
        decimals=_int(params, "decimals", 2),
        **_scale_args(params, timeout),  # type: ignore[arg-type]
    )


def _toledo(params: Params, timeout: float | None) -> SimDevice:
    from firmware_sim.scales.toledo import ToledoScale

    (tare,) = _kg_list({"tare": params.get("tare", "0")}, "tare") or [Decimal(0)]
    return ToledoScale(
        loads(params),
        tare_kg=tare,
        decimals=_int(params, "decimals", 1),
        **_scale_args(params, timeout),  # type: ignore[arg-type]
    )


def _mtsics(params: Params, timeout: float | None) -> SimDevice:
    from firmware_sim.scales.mtsics import MTSICSScale

    return MTSICSScale(loads(params), **_scale_args(params, timeout))  # type: ignore[arg-type]


def _rdm6300(params: Params, timeout: float | None) -> SimDevice:
    from firmware_sim.rfid import RDM6300

    reader = RDM6300(rate_hz=_float(params, "rate", 10), **_common(params, timeout))  # type: ignore[arg-type]
    if tags(params):
        reader.queue(tags(params), hold_ticks=_int(params, "hold", 3))
    return reader


def tags(params: Params) -> list[str]:
    return [t for t in params.get("tags", "").split(",") if t]


def _maxbotix(params: Params, timeout: float | None) -> SimDevice:
    from firmware_sim.rangefinder import MaxBotix

    mm = params.get("mm", "1000")
    return MaxBotix(
        None if mm == "none" else _int(params, "mm", 1000),
        rate_hz=_float(params, "rate", 6.7),
        noise_mm=_int(params, "noise", 0),
        spike_rate=_float(params, "spikes", 0),
        **_common(params, timeout),  # type: ignore[arg-type]
    )


DEVICES: dict[str, Callable[[Params, float | None], SimDevice]] = {
    "scale/ad": _ad,
    "scale/toledo": _toledo,
    "scale/mtsics": _mtsics,
    "rfid/rdm6300": _rdm6300,
    "range/maxbotix": _maxbotix,
}


def build_device(name: str, params: Params, *, timeout: float | None = 0.5) -> SimDevice:
    try:
        make = DEVICES[name]
    except KeyError:
        raise ValueError(f"unknown simulated device {name!r} (known: {sorted(DEVICES)})") from None
    return make(params, timeout)
