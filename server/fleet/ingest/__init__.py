"""MQTT ingest: a paho subscriber that only hands off, and a handler that does the work."""
