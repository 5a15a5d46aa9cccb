"""Collection logistics: places on the map, fill forecasts, the due list, proof of
pickup and the mass balance (route planning and notifications beside them)."""
