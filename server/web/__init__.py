"""Server-rendered pages: Jinja2 templates, one small stylesheet, Kazakh/Russian/English.

Pages read through the same server functions as the JSON API (``server.contractors``,
``server.tickets``, ``server.evidence``, ``server.fleet``, ``server.statements``) and
use the same dependencies (``server.api.deps``); a page module only chooses a template.
"""
