"""The MQTT side of ingest: subscribe, hand messages to a worker thread, ack after commit.

The paho callback does one thing (put the message on a queue). The worker drains up
to ``ingest_batch_max`` messages, lets :class:`IngestHandler` commit them in one
transaction, then publishes the application acks and only then PUBACKs the messages
to the broker (paho ``manual_ack``), so a worker killed mid-batch leaves them with the
broker for redelivery. The device's resend-until-ack covers whatever a broker drops.

With ``share_group`` set, every worker subscribes as ``$share/<group>/…`` and the
broker splits the stream between them; without it one worker takes everything (for
brokers without shared subscriptions, such as the embedded demo broker).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from edge.protocol import BrokerUrl, Channel, subscription
from server.ingest.handler import Inbound, IngestHandler

log = logging.getLogger(__name__)

INGESTED = (
    Channel.WEIGHING,
    Channel.FILL,
    Channel.HEALTH,
    Channel.STATUS,
    Channel.ALARM,
    Channel.CONFIG_REPORTED,
)


@dataclass(frozen=True, slots=True)
class _Received:
    inbound: Inbound
    mid: int
    qos: int


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
        ca_file: str | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.handler = handler
        self.url = BrokerUrl.parse(broker_url)
        self.share_group = share_group
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.connected = threading.Event()
        self.db_errors = 0
        self._inbox: queue.Queue[_Received] = queue.Queue()
        self._stop = threading.Event()
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
            self._client.tls_set(ca_certs=ca_file)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    # paho callbacks: hand off only ---------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            log.error("broker refused the ingest connection: %s", rc)
            return
        client.subscribe([(subscription(ch, self.share_group), 1) for ch in INGESTED])
        self.connected.set()
        log.info("ingest connected to %s (shared group: %s)", self.url, self.share_group)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("ingest disconnected: %s", rc)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._inbox.put(
            _Received(
                Inbound(message.topic, bytes(message.payload), datetime.now(UTC)),
                message.mid,
                message.qos,
            )
        )

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
        """Stop; with ``drain`` the messages already received are committed and acked."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=30)
        if drain:
            self._flush_remaining()
        self._client.disconnect()
        self._client.loop_stop()

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
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch:
                self._commit(batch)

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
        while True:
            try:
                acks = self.handler.handle_batch([r.inbound for r in batch])
                break
            except SQLAlchemyError as exc:
                # Database down or a race with another worker on the same (device, seq):
                # nothing was committed, nothing acked; try the same batch again.
                self.db_errors += 1
                attempt += 1
                log.error("ledger write failed (attempt %d): %s", attempt, exc)
                if not retry or self._stop.is_set():
                    return
                time.sleep(min(10.0, 0.2 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.0))
        for out in acks:
            info = self._client.publish(out.topic, out.payload, qos=1)
            if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                # The device resends and gets a duplicate ack; nothing is lost.
                log.warning("ack to %s not queued (rc=%s)", out.topic, info.rc)
        for r in batch:
            if r.qos > 0:
                self._client.ack(r.mid, r.qos)
