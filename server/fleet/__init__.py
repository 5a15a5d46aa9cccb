"""The fleet: where a device's message enters (ingest), the device registry, alarms,
telemetry and its rollups, fleet state, dead letters, broker and Grafana configuration."""
