"""The MQTT side of ingest: subscribe, hand messages to a worker thread, ack after commit.

The paho callback does one thing (put the message on a queue). The worker drains up
to ``ingest_batch_max`` messages, lets :class:`IngestHandler` commit them in one
transaction, then publishes the application acks and only then PUBACKs the messages
to the broker (paho ``manual_ack``), so a worker killed mid-batch leaves them with the
broker for redelivery. The device's resend-until-ack covers whatever a broker drops.

With ``share_group`` set, every worker subscribes as ``$share/<group>/…`` and the
broker splits the stream between them; without it one worker takes everything (for
brokers without shared subscriptions, such as the embedded demo broker).

Each worker needs its own stable ``client_id``: its persistent session is where the
broker keeps its share while it restarts. Mosquitto goes on routing a share to a
member that is offline, so a worker that is removed for good must *retire*
(:meth:`Subscriber.retire`: unsubscribe, drain, leave) rather than just stop.

Every second the worker also publishes the acks that an operator's re-processing
of dead letters left in ``pending_acks`` (and deletes them once handed to paho).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from edge.protocol import BrokerUrl, subscription
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import INGESTED, Inbound, Outbound, is_transient

log = logging.getLogger(__name__)

__all__ = ["INGESTED", "Subscriber"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Received:
    inbound: Inbound
    mid: int
    qos: int
    generation: int
    """Which connection delivered it: a PUBACK is only valid on that connection."""


class Subscriber:
    def __init__(
        self,
        handler: IngestHandler,
        *,
        broker_url: str,
        client_id: str = "epr-ingest",
        protocol: str = "3.1.1",
        share_group: str | None = None,
        batch_max: int = 500,
        batch_wait_s: float = 0.05,
        inbox_max: int | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        clock: Callable[[], datetime] | None = None,
        receipt: Callable[[str, bytes], datetime] | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.handler = handler
        self.clock = clock or _utc_now
        """The receive time of a message (a simulation passes its own clock)."""
        self.receipt = receipt
        """The receive time of a message from its topic and payload, if not ``clock``'s: a
        simulation whose sites keep their own clocks knows when each was sent."""
        self.url = BrokerUrl.parse(broker_url)
        self.share_group = share_group
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.connected = threading.Event()
        self.db_errors = 0
        self.handled = 0
        self.pending_acks_every_s = 1.0
        """How often the worker looks for acks left by re-processing (``pending_acks``)."""
        self._generation = 0
        # Bounded: when the worker falls behind, the paho thread waits here, stops
        # reading the socket and the broker keeps the rest (its queue is unbounded).
        # Unbounded, a backlog piled up in this process: memory, a long drain at
        # stop, and everything to redeliver after a kill.
        self._inbox: queue.Queue[_Received] = queue.Queue(
            maxsize=inbox_max if inbox_max is not None else 4 * batch_max
        )
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._worker: threading.Thread | None = None
        self._mqtt = mqtt
        v5 = protocol == "5"
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            # A persistent session: while this worker is down the broker keeps its
            # share of the stream (the broker config must not cap the queue).
            clean_session=None if v5 else False,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            manual_ack=True,
        )
        self._v5 = v5
        # paho's own limit on acks/publishes it keeps in flight; acks are tiny.
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        if self.url.username:
            self._client.username_pw_set(self.url.username, self.url.password)
        if self.url.tls:
            self._client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    # paho callbacks: hand off only ---------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            log.error("broker refused the ingest connection: %s", rc)
            return
        # Every connect, not only the first: a broker restarted without persistence
        # has forgotten the session and its subscriptions.
        client.subscribe([(subscription(ch, self.share_group), 1) for ch in INGESTED])
        self._generation += 1
        self.connected.set()
        log.info("ingest connected to %s (shared group: %s)", self.url, self.share_group)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("ingest disconnected: %s", rc)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if self._closing.is_set():
            return  # not acked: the broker delivers it again on the next connection
        payload = bytes(message.payload)
        at = self._received_at(message.topic, payload)
        self._inbox.put(
            _Received(
                Inbound(
                    message.topic,
                    payload,
                    at,
                    retained=bool(message.retain),
                ),
                message.mid,
                message.qos,
                self._generation,
            )
        )

    def _received_at(self, topic_name: str, payload: bytes) -> datetime:
        """``receipt``'s time if it gives one; whatever it raises on a message costs that
        message its simulated time, never the paho thread (it would end the loop)."""
        if self.receipt is not None:
            try:
                return self.receipt(topic_name, payload)
            except Exception:
                log.warning("receipt time of a message on %s failed; clock used", topic_name)
        return self.clock()

    # lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        if self._v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 7 * 24 * 3600
            self._client.connect_async(
                self.url.host, self.url.port, keepalive=60, clean_start=False, properties=props
            )
        else:
            self._client.connect_async(self.url.host, self.url.port, keepalive=60)
        self._client.loop_start()
        self._worker = threading.Thread(target=self._work, name="ingest-worker", daemon=True)
        self._worker.start()

    def stop(self, drain: bool = True) -> None:
        """Stop; with ``drain`` the messages already received are committed and acked.

        Messages arriving after this point are left unacked for the broker to deliver
        again, so the drain is bounded by the inbox size.
        """
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=30)
        self._closing.set()
        if drain:
            self._flush_remaining()
        self._client.disconnect()
        self._client.loop_stop()

    def retire(self, idle_s: float = 2.0, timeout_s: float = 600.0) -> None:
        """Leave the shared group for good: unsubscribe, handle what is queued, stop.

        After the UNSUBSCRIBE the broker routes the group's messages to the other
        members; what it had already queued for this session is still delivered and
        committed here before the worker disconnects.
        """
        if self.connected.is_set():
            self._client.unsubscribe([subscription(ch, self.share_group) for ch in INGESTED])
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        seen = self.handled
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if self.handled != seen or self.pending():
                seen, quiet_since = self.handled, time.monotonic()
            elif time.monotonic() - quiet_since >= idle_s:
                break
        self.stop()

    def pending(self) -> int:
        return self._inbox.qsize()

    # worker --------------------------------------------------------------------------

    def _next_batch(self) -> list[_Received]:
        try:
            first = self._inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._inbox.get_nowait()
                    if remaining <= 0
                    else self._inbox.get(timeout=remaining)
                )
            except queue.Empty:
                break
        return batch

    def _work(self) -> None:
        next_pending = 0.0
        while not self._stop.is_set():
            batch = self._next_batch()
            self.handler.metrics.inbox.set(self._inbox.qsize())
            if batch:
                self._commit(batch)
            if time.monotonic() >= next_pending:
                next_pending = time.monotonic() + self.pending_acks_every_s
                self._publish_pending()

    def _publish_pending(self) -> None:
        """Publish the acks other processes left in ``pending_acks`` (re-processed dead
        letters: the web pages, the API and the CLI have no MQTT connection)."""
        if not self.connected.is_set():
            return

        def publish(out: Outbound) -> bool:
            info = self._client.publish(out.topic, out.payload, qos=1)
            return bool(info.rc == self._mqtt.MQTT_ERR_SUCCESS)

        try:
            sent = self.handler.pending_acks(publish)
        except SQLAlchemyError as exc:
            log.warning("pending acks not read: %s", exc)
            return
        if sent:
            log.info("published %d pending ack message(s)", sent)

    def _flush_remaining(self) -> None:
        while True:
            batch: list[_Received] = []
            while len(batch) < self.batch_max:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                return
            self._commit(batch, retry=False)

    def _commit(self, batch: list[_Received], retry: bool = True) -> None:
        attempt = 0
        inbound = [r.inbound for r in batch]
        while True:
            try:
                acks = self.handler.handle_batch(inbound, attempt=attempt)
                break
            except SQLAlchemyError as exc:
                # Database down, or a race with another worker on the same key:
                # nothing was committed, nothing acked; try the same batch again.
                self.db_errors += 1
                self.handler.metrics.ledger_errors.labels(type(exc).__name__).inc()
                attempt += 1
                log.error("ledger write failed (attempt %d): %s", attempt, exc)
                if not retry or self._stop.is_set():
                    return
                pause = 0.2 * 2 ** min(attempt, 6) if is_transient(exc) else 1.0
                time.sleep(min(10.0, pause) * random.uniform(0.5, 1.0))
            except Exception:
                # handle_batch isolates bad payloads itself; reaching here is a bug in
                # the worker. Leave the batch unacked (the broker redelivers it on the
                # next connection) rather than let the thread die.
                log.exception("ingest batch failed; leaving it unacked")
                self.db_errors += 1
                time.sleep(1.0)
                return
        for out in acks:
            info = self._client.publish(out.topic, out.payload, qos=1)
            if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                # QUEUE_SIZE or NO_CONN: the device resends and gets a duplicate ack.
                self.handler.metrics.ack_refused.inc()
                log.warning("ack to %s not queued (rc=%s)", out.topic, info.rc)
        generation = self._generation
        for r in batch:
            # A PUBACK for a message of an earlier connection would name a packet id
            # the broker may have reused; that message is redelivered anyway.
            if r.qos > 0 and r.generation == generation:
                self._client.ack(r.mid, r.qos)
        self.handled += len(batch)
