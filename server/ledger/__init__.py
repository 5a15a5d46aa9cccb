"""The ledger: SQLAlchemy models, the engine and the repositories over them."""
