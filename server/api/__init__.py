"""The web API: FastAPI app factory, dependencies and routers."""
