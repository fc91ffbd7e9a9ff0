"""Per-session CSRF tokens, checked on every POST/PUT/PATCH/DELETE.

Forms carry the token in a hidden ``csrf_token`` field, fetch() calls in the
``X-CSRF-Token`` header. A small own implementation: the rule is short and
Flask-WTF would bring WTForms along for one function.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, abort, current_app, request, session

SESSION_KEY = "_csrf"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token() -> str:
    tok = session.get(SESSION_KEY)
    if not tok:
        tok = secrets.token_urlsafe(32)
        session[SESSION_KEY] = tok
    return str(tok)


def csrf_exempt(view: Callable[..., Any]) -> Callable[..., Any]:
    """For token-authenticated machine endpoints only (no cookie session involved)."""
    view._csrf_exempt = True  # type: ignore[attr-defined]
    return view


def _check() -> None:
    if request.method not in UNSAFE:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, "_csrf_exempt", False):
        return
    if request.blueprint and request.blueprint in current_app.config.get("CSRF_EXEMPT_BLUEPRINTS", ()):
        return
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    want = session.get(SESSION_KEY) or ""
    if not want or not hmac.compare_digest(str(sent), str(want)):
        abort(400, description="csrf")


def protect(target: Flask | Blueprint) -> None:
    """Check CSRF before every unsafe request handled by `target` (an app or one blueprint)."""
    target.before_request(_check)
    ctx = target.context_processor if isinstance(target, Flask) else target.app_context_processor
    ctx(lambda: {"csrf_token": csrf_token})
