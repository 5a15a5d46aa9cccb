"""The agent's MQTT session, behind a small :class:`Link` interface.

:class:`MqttLink` wraps paho-mqtt 2.x (``CallbackAPIVersion.VERSION2``). It speaks
MQTT 3.1.1 or 5 as configured; nothing the agent guarantees depends on a v5 feature
(the journal, ``seq`` and the application ack carry every guarantee), v5 only adds
a will delay and message expiry for telemetry.

The network loop is ours rather than paho's ``loop_start`` so that reconnects use
exponential backoff *with jitter*: a whole region's agents coming back after a
cellular outage must not reconnect in lock step.

Everything that arrives (connects, disconnects, messages) is put on ``events``; the
agent's own thread drains it, so no journal write ever happens on paho's thread.
"""

from __future__ import annotations

import logging
import queue
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from edge.protocol import BrokerUrl

if TYPE_CHECKING:
    from edge.watchdog import Progress

log = logging.getLogger(__name__)


class LinkEventKind(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    MESSAGE = "message"


@dataclass(frozen=True, slots=True)
class LinkEvent:
    kind: LinkEventKind
    topic: str = ""
    payload: bytes = b""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LastWill:
    topic: str
    payload: bytes
    delay_s: int = 30  # v5 only: a quick reconnect does not flap "offline"


class Link(Protocol):
    events: queue.SimpleQueue[LinkEvent]

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: int | None = None,
    ) -> bool:
        """Hand a message to the client; False if it was not accepted (not connected,
        in-flight window full). The caller keeps the record and retries later."""


@dataclass
class LinkStats:
    connects: int = 0
    disconnects: int = 0
    publish_refused: int = 0
    last_error: str = ""


@dataclass
class MqttLinkSettings:
    url: BrokerUrl
    client_id: str
    protocol: str = "3.1.1"  # or "5"
    keepalive_s: int = 60
    inflight_window: int = 20
    queue_limit: int = 200
    backoff_min_s: float = 1.0
    backoff_max_s: float = 120.0
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    subscriptions: list[str] = field(default_factory=list)
    birth: tuple[str, bytes] | None = None
    will: LastWill | None = None
    status: Callable[[], tuple[bytes, bytes]] | None = None
    """Composes a fresh (birth, will) payload pair before every connect, replacing
    the payloads of ``birth`` and ``will`` (same topics): each connection's status is
    signed and numbered anew, so an old one replayed is recognised as old."""


class MqttLink:
    #: The network loop's heartbeat name for the watchdog (see :meth:`watch`).
    progress_name = "link"

    def __init__(self, settings: MqttLinkSettings, rng: random.Random | None = None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.settings = settings
        self.events: queue.SimpleQueue[LinkEvent] = queue.SimpleQueue()
        self.stats = LinkStats()
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self._v5 = settings.protocol == "5"
        self._mqtt = mqtt
        self._progress: Progress | None = None
        version = MQTTProtocolVersion.MQTTv5 if self._v5 else MQTTProtocolVersion.MQTTv311
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            # A clean session on purpose: after a reconnect the outbox resends every
            # unacked record, so a broker-side session would only add stale state.
            clean_session=None if self._v5 else True,
            protocol=version,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(settings.inflight_window)
        client.max_queued_messages_set(settings.queue_limit)
        url = settings.url
        if url.username:
            client.username_pw_set(url.username, url.password)
        if url.tls:
            client.tls_set(
                ca_certs=settings.ca_file,
                certfile=settings.cert_file,
                keyfile=settings.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        self._client = client
        self._birth = settings.birth
        self._will = settings.will
        self._set_will()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message

    def _set_will(self) -> None:
        will = self._will
        if will is None:
            return
        props = None
        if self._v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
            props.WillDelayInterval = will.delay_s
        self._client.will_set(will.topic, will.payload, qos=1, retain=True, properties=props)

    def _compose_status(self) -> None:
        """A fresh signed birth and will for the connection about to be made."""
        compose = self.settings.status
        if compose is None:
            return
        birth, will = compose()
        if self._birth is not None:
            self._birth = (self._birth[0], birth)
        if self._will is not None:
            self._will = replace(self._will, payload=will)
            self._set_will()

    # ------------------------------------------------------------------ callbacks

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self.stats.last_error = f"broker refused connection: {reason_code}"
            log.warning("%s", self.stats.last_error)
            return
        self.stats.connects += 1
        for sub in self.settings.subscriptions:
            rc, _ = client.subscribe(sub, qos=1)
            if rc != self._mqtt.MQTT_ERR_SUCCESS:
                # Without the ack subscription nothing would ever leave the outbox.
                self.stats.last_error = f"subscribe {sub} failed: rc={rc}"
                log.warning("%s; reconnecting", self.stats.last_error)
                client.disconnect()
                return
        if self._birth is not None:
            topic, payload = self._birth
            info = client.publish(topic, payload, qos=1, retain=True)
            if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                self.stats.publish_refused += 1
                log.warning("birth status not accepted: rc=%s", info.rc)
        self._connected.set()
        self.events.put(LinkEvent(LinkEventKind.CONNECTED))

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if self._connected.is_set():
            self.stats.disconnects += 1
            self._connected.clear()
            self.events.put(LinkEvent(LinkEventKind.DISCONNECTED, reason=str(reason_code)))

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.events.put(LinkEvent(LinkEventKind.MESSAGE, message.topic, bytes(message.payload)))

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._connected.is_set():
            # A clean disconnect suppresses the will; publish "offline" ourselves.
            if self._will is not None:
                info = self._client.publish(
                    self._will.topic, self._will.payload, qos=1, retain=True
                )
                if info.rc == self._mqtt.MQTT_ERR_SUCCESS:
                    try:
                        info.wait_for_publish(timeout=2)
                    except RuntimeError:
                        log.debug("offline status not confirmed before disconnect")
            self._client.disconnect()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._connected.clear()

    def watch(self, progress: Progress) -> None:
        """Beat ``progress`` from the network loop, so a wedged loop stops the watchdog."""
        self._progress = progress

    def _beat(self) -> None:
        if self._progress is not None:
            self._progress.beat(self.progress_name)

    def _wait(self, seconds: float) -> None:
        """Back off, beating meanwhile: waiting to reconnect is progress, hanging is not."""
        end = time.monotonic() + seconds
        while not self._stop.is_set():
            self._beat()
            left = end - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, 1.0))

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [min, min(max, min·2^attempt)]."""
        s = self.settings
        ceiling = min(s.backoff_max_s, s.backoff_min_s * (2 ** min(attempt, 20)))
        return self._rng.uniform(s.backoff_min_s, ceiling)

    def _run(self) -> None:
        mqtt = self._mqtt
        attempt = 0
        url = self.settings.url
        while not self._stop.is_set():
            self._beat()
            self._compose_status()
            was_connected = False
            try:
                rc = self._client.connect(url.host, url.port, keepalive=self.settings.keepalive_s)
            except (OSError, ssl.SSLError) as exc:
                self.stats.last_error = f"connect to {url.host}:{url.port} failed: {exc}"
                rc = mqtt.MQTT_ERR_NO_CONN
            while rc == mqtt.MQTT_ERR_SUCCESS and not self._stop.is_set():
                rc = self._client.loop(timeout=0.2)
                self._beat()
                if self._connected.is_set():
                    attempt = 0
                    was_connected = True
            if self._stop.is_set():
                # Let the DISCONNECT (and the offline status before it) go out.
                for _ in range(10):
                    if self._client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                        break
                return
            self._on_disconnect(self._client, None, None, rc, None)
            delay = self.backoff(attempt)
            # At the default level, at once: a technician watching the journal must
            # see why nothing is sent (a wrong host, port, CA or password) without
            # waiting for the next health message. paho's connect gives up after
            # connect_timeout (5 s) on a host that does not answer.
            if was_connected:
                log.warning("connection to the broker lost (%s); reconnecting in %.0f s",
                            mqtt.error_string(rc), delay)  # fmt: skip
            else:
                reason = self.stats.last_error or mqtt.error_string(rc)
                log.warning("broker %s:%s not reached: %s; next try in %.0f s",
                            url.host, url.port, reason, delay)  # fmt: skip
            self.stats.last_error = ""
            self._wait(delay)
            attempt += 1

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: int | None = None,
    ) -> bool:
        if not self._connected.is_set():
            return False
        props = None
        if self._v5 and expiry_s is not None:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.MessageExpiryInterval = expiry_s
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
            # QUEUE_SIZE (window full) or NO_CONN: not an error, the outbox retries.
            self.stats.publish_refused += 1
            return False
        return True


class MemoryBus:
    """An in-memory broker for unit tests: exact topic matching plus ``+`` wildcards."""

    def __init__(self) -> None:
        self.links: list[MemoryLink] = []
        self.published: list[tuple[str, bytes]] = []
        self.retained: dict[str, bytes] = {}

    def deliver(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.published.append((topic, payload))
        if retain:
            self.retained[topic] = payload
        for link in self.links:
            if link.connected and any(_matches(s, topic) for s in link.subscriptions):
                link.events.put(LinkEvent(LinkEventKind.MESSAGE, topic, payload))


def _matches(pattern: str, topic: str) -> bool:
    p_parts, t_parts = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(p_parts) == len(t_parts)


class MemoryLink:
    """A :class:`Link` on a :class:`MemoryBus`; ``connected`` is set by the test."""

    def __init__(self, bus: MemoryBus, subscriptions: list[str]) -> None:
        self.bus = bus
        self.subscriptions = subscriptions
        self.events: queue.SimpleQueue[LinkEvent] = queue.SimpleQueue()
        self._connected = False
        self.refuse_publish = False
        bus.links.append(self)

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        self.set_connected(True)

    def stop(self) -> None:
        self._connected = False

    def set_connected(self, value: bool) -> None:
        self._connected = value
        kind = LinkEventKind.CONNECTED if value else LinkEventKind.DISCONNECTED
        self.events.put(LinkEvent(kind))

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: int | None = None,
    ) -> bool:
        if not self._connected or self.refuse_publish:
            return False
        self.bus.deliver(topic, payload, retain)
        return True
