from tests.support.web import web

__all__ = ["web"]
