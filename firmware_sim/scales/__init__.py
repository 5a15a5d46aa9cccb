"""Scale emulators, one module per protocol family, plus the load script they share."""
