"""Downloads named in Chinese: Content-Disposition per RFC 6266 / RFC 5987, extension kept.

Werkzeug's ASCII fallback of an all-Chinese name is just its extension ("xlsx"), which some
clients save as a file without one; the fallback here is given, with its extension.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Response


def content_disposition(name: str, fallback: str) -> str:
    """`attachment; filename="fallback"; filename*=UTF-8''<name percent-encoded>`."""
    safe = fallback.replace("\\", "_").replace('"', "_")
    return f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(name, safe='')}"


def attachment(body: bytes, name: str, fallback: str, mimetype: str) -> Response:
    resp = Response(body, mimetype=mimetype)
    resp.headers["Content-Disposition"] = content_disposition(name, fallback)
    return resp
