"""Server: MQTT ingest, the weighing ledger, contracts, compensation and the web API."""

__version__ = "0.1.0"
