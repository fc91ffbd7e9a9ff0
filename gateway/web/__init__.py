"""The gateway's admin web UI (Flask app factory).

``create_app(config, engine)`` builds the app; ``gateway run`` serves it with
waitress. One blueprint per area: accounts (shared with the hub UI: login,
users, audit log), dashboard, sources, mappings, deliveries, records,
spreadsheet.
"""

from gateway.web.app import create_app

__all__ = ["create_app"]
