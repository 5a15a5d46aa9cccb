#!/bin/sh
# One-time InfluxDB 2.x setup for the telemetry bucket (run on the InfluxDB host).
# Retention: fill readings and health are operational data; 400 days covers a year
# of dashboards and the same month last year.
set -eu
influx setup --skip-verify --force \
  --org epr --bucket telemetry --retention 400d \
  --username admin --password "${INFLUX_ADMIN_PASSWORD:?set INFLUX_ADMIN_PASSWORD}"
# A write-only token for ingest, a read-only one for Grafana:
BUCKET_ID=$(influx bucket list --org epr --name telemetry --hide-headers | cut -f1)
influx auth create --org epr --write-bucket "$BUCKET_ID" --description "epr ingest"
influx auth create --org epr --read-bucket "$BUCKET_ID" --description "grafana"
