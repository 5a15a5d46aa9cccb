"""Collection logistics: places, fill forecasts, due lists, routes and the mass balance."""
