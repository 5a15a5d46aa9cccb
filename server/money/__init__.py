"""The money: contracts, MRP and badges, holds, allocation, statements and their
lifecycle, disputes, evidence and the audit log. Pure of HTTP and of MQTT."""
