"""Fault tests. Small by default (seconds); ``make fault-ingest`` runs them full size.

EPR_FAULT_OUTAGE_S: how long PostgreSQL / the InfluxDB-API server stay down (3; full 30).
EPR_FAULT_RECORDS: weighings per device (10; full 100).
"""

from __future__ import annotations

import os

OUTAGE_S = float(os.environ.get("EPR_FAULT_OUTAGE_S", "3"))
RECORDS = int(os.environ.get("EPR_FAULT_RECORDS", "10"))
