"""Notifications: events queued in the ledger, per-account subscriptions, and grouped,
throttled messages sent through Apprise (docs/notifications.md)."""
