"""Server-rendered pages: Jinja2 templates, one small stylesheet, Kazakh/Russian/English.

Pages read through the same server functions as the JSON API
(``server.money.contractors``, ``server.money.tickets``, ``server.money.evidence``,
``server.fleet.overview``, ``server.money.statements``) and use the same dependencies
(``server.api.deps``); a page module only chooses a template.
"""
