"""The hub operators' web UI: receipt log, department status, the 通报 report, record browser.

Registered on the hub app with ``app.register_blueprint(gateway.hub.ui.bp)``;
registering also attaches the shared accounts pages (login, users, audit) under /ui.
"""

from gateway.hub.ui import forwarding, workbook_import  # noqa: F401 - their pages are routes of bp
from gateway.hub.ui.views import bp

__all__ = ["bp"]
