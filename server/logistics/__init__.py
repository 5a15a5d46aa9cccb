"""Collection logistics: places on the map, fill forecasts, the due list, planned routes,
proof of pickup and the mass balance."""
