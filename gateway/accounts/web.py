"""The accounts blueprint shared by both UIs: login/logout, users, audit log, access checks.

An app (or the hub UI blueprint) attaches it with ``attach(app, ui)``; views
guard themselves with ``@require("permission")``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from gateway.accounts import csrf
from gateway.accounts.forwarded import TrustedProxies
from gateway.accounts.labels import audit_label
from gateway.accounts.store import AccountError, AccountStore, LoginRefused, User

SESSION_USER = "uid"
SESSION_AT = "login_at"
SESSION_TAG = "tag"
SESSION_HOURS = 8


@dataclass
class NavItem:
    endpoint: str
    label: str
    permission: str = "view"


@dataclass
class AccountsUI:
    """What the shared pages need to know about the app they serve."""

    store: AccountStore
    permissions: Mapping[str, frozenset[str]]
    home_endpoint: str
    title: str
    nav: list[NavItem] = field(default_factory=list)
    # Peers whose X-Forwarded-For names the client ([web] / [hub] trusted_proxies); empty: never read.
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)

    def allowed(self, user: User | None, permission: str) -> bool:
        return user is not None and user.role in self.permissions.get(permission, frozenset())


def ui() -> AccountsUI:
    return current_app.extensions["accounts_ui"]


def current_user() -> User | None:
    return g.get("user")


def actor() -> str:
    u = current_user()
    return u.username if u else "-"


def client_address() -> tuple[str | None, str | None]:
    """(the client's address, the trusted proxy it came through or None): see gateway.accounts.forwarded."""
    return ui().trusted_proxies.client(request.remote_addr, request.headers.get("X-Forwarded-For"))


def remote_addr() -> str | None:
    return client_address()[0]


def audit(action: str, target: str | None = None, before: Any = None, after: Any = None, conn: Any = None) -> None:
    """Audit a change made by the logged-in user in this request."""
    ui().store.record(action, target, actor=actor(), before=before, after=after, remote_addr=remote_addr(), conn=conn)


def audit_later() -> Callable[..., None]:
    """`audit` bound to this request's user and address, for work that finishes after the request (a job)."""
    store, who, addr = ui().store, actor(), remote_addr()

    def record(action: str, target: str | None = None, before: Any = None, after: Any = None) -> None:
        store.record(action, target, actor=who, before=before, after=after, remote_addr=addr)

    return record


def require(permission: str = "view") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*a: Any, **kw: Any) -> Any:
            user = current_user()
            if user is None:
                if request.method == "GET" and "/api/" not in request.path:
                    return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))
                abort(401)
            if not ui().allowed(user, permission):
                abort(403)
            return view(*a, **kw)

        wrapped._permission = permission  # type: ignore[attr-defined]
        return wrapped

    return deco


def _load_user() -> None:
    g.user = None
    uid = session.get(SESSION_USER)
    if uid is None:
        return
    at = session.get(SESSION_AT)
    if not at or dt.datetime.fromisoformat(at) < dt.datetime.now(dt.UTC) - dt.timedelta(hours=SESSION_HOURS):
        session.clear()
        return
    # Loaded per request so a deleted user, a changed role or a new password takes effect at once.
    g.user = ui().store.get(int(uid))
    if g.user is None or g.user.session_tag != session.get(SESSION_TAG):
        g.user = None
        session.clear()


# Open to a user who still has a one-time password: the page to replace it, and leaving.
_BEFORE_CHANGE = frozenset({"accounts.password", "accounts.password_change", "accounts.logout", "accounts.login"})


def _force_password_change() -> Any:
    """Send a user with a one-time password to the change-password page from every other page.

    The machine APIs (token or signature auth, no session user) are not concerned.
    """
    user = current_user()
    endpoint = request.endpoint or ""
    if user is None or not user.must_change_password or endpoint in _BEFORE_CHANGE or endpoint.endswith("static"):
        return None
    if "/api/" in request.path:
        return None
    if request.method != "GET":
        abort(403, description="请先修改初始密码，再进行其他操作。")
    return redirect(url_for("accounts.password", next=request.full_path.rstrip("?")))


def _start_session(user: User) -> None:
    # A fresh session on login: nothing from before (fixation) carries over.
    session.clear()
    session.permanent = True
    session[SESSION_USER] = user.id
    session[SESSION_TAG] = user.session_tag
    session[SESSION_AT] = dt.datetime.now(dt.UTC).isoformat()


def _password_page(error: str | None = None) -> str:
    user = current_user()
    return render_template("accounts/password.html", error=error, forced=bool(user and user.must_change_password))


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def make_blueprint(url_prefix: str = "") -> Blueprint:
    bp = Blueprint(
        "accounts", __name__, url_prefix=url_prefix + "/accounts",
        template_folder="templates", static_folder="static", static_url_path="/static",
    )

    @bp.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        error = None
        if request.method == "POST":
            username = request.form.get("username", "").strip()
            password = request.form.get("password", "")
            addr, via = client_address()
            try:
                user = ui().store.authenticate(username, password, addr, via)
            except LoginRefused as e:
                error, retry_after = str(e), e.retry_after
                if retry_after is not None:  # throttled: the password was not even checked
                    page = render_template("accounts/login.html", error=error)
                    return page, 429, {"Retry-After": str(retry_after)}
            else:
                _start_session(user)
                target = _safe_next(request.args.get("next"))
                if user.must_change_password:
                    return redirect(url_for("accounts.password", next=target))
                return redirect(target or url_for(ui().home_endpoint))
        return render_template("accounts/login.html", error=error), (401 if error else 200)

    @bp.route("/logout", methods=["POST"])
    def logout() -> Any:
        if current_user():
            ui().store.record("logout", actor(), actor=actor(), remote_addr=remote_addr())
        session.clear()
        return redirect(url_for("accounts.login"))

    @bp.route("/password")
    @require("view")
    def password() -> Any:
        """Every user changes their own password here; a one-time password must be changed here first."""
        return _password_page()

    @bp.route("/password", methods=["POST"])
    @require("view")
    def password_change() -> Any:
        user, f = current_user(), request.form
        assert user is not None  # @require
        new = f.get("new_password", "")
        try:
            if new != f.get("new_password2", ""):
                raise AccountError("两次输入的新密码不一致")
            changed = ui().store.change_own_password(user.username, f.get("current_password", ""), new, remote_addr())
        except AccountError as e:
            return _password_page(str(e)), 400
        # This session goes on under the new password's tag; every other one of the user ends.
        session[SESSION_TAG] = changed.session_tag
        flash("密码已修改，您在其他地方的登录已失效", "ok")
        return redirect(_safe_next(request.args.get("next")) or url_for(ui().home_endpoint))

    @bp.route("/users")
    @require("manage_users")
    def users() -> Any:
        store = ui().store
        return render_template("accounts/users.html", users=store.list(), roles=store.roles,
                               default_role=store.least_role, me=actor())

    @bp.route("/users", methods=["POST"])
    @require("manage_users")
    def users_change() -> Any:
        store, f, who = ui().store, request.form, actor()
        action, name = f.get("action", ""), f.get("username", "").strip()
        try:
            if action == "add":
                # The admin chose this password: the user replaces it at first login.
                store.add(name, f.get("password", ""), f.get("role", ""), f.get("display_name", ""), actor=who,
                          one_time=True)
                flash(f"已添加用户 {name}；初始密码为一次性密码，首次登录时须修改", "ok")
            elif action == "role":
                store.set_role(name, f.get("role", ""), who)
                flash(f"已修改 {name} 的角色", "ok")
            elif action == "password":
                if name == who:
                    raise AccountError("不能在此重置自己的密码：请使用“修改密码”页面")
                store.set_password(name, f.get("password", ""), who, one_time=True)
                flash(f"已重置 {name} 的密码；新密码为一次性密码，下次登录时须修改", "ok")
            elif action == "unlock":
                store.unlock(name, who)
                flash(f"已解锁 {name}", "ok")
            elif action == "delete":
                store.delete(name, who)
                flash(f"已删除用户 {name}", "ok")
            else:
                abort(400)
        except AccountError as e:
            flash(str(e), "error")
        return redirect(url_for("accounts.users"))

    @bp.route("/audit")
    @require("manage_users")
    def audit_log() -> Any:
        before = request.args.get("before", type=int)
        rows = ui().store.audit_page(before, 100, request.args.get("actor") or None, request.args.get("action") or None)
        return render_template("accounts/audit.html", rows=rows, next_before=rows[-1]["id"] if len(rows) == 100 else None)

    return bp


def attach(app: Flask, accounts_ui: AccountsUI, url_prefix: str = "", tls: bool = False, whole_app: bool = True) -> None:
    """Wire the shared accounts pages, user loading and session cookie flags into `app`.

    `whole_app`: the app is all UI (the gateway), so CSRF checks and Chinese
    error pages cover every route; otherwise (the hub, whose API has its own
    rules) only the accounts pages get them here and the caller adds its own
    blueprint.
    """
    app.extensions["accounts_ui"] = accounts_ui
    bp = make_blueprint(url_prefix)
    if not whole_app:
        from gateway.accounts import errors

        csrf.protect(bp)
        errors.install(bp)
    app.register_blueprint(bp)
    app.before_request(_load_user)
    app.before_request(_force_password_change)
    secure_cookies(app, tls)
    app.add_template_filter(audit_label, "audit_label")

    @app.context_processor
    def _ctx() -> dict[str, Any]:
        u = current_user()
        a = ui()
        return {
            "current_user": u,
            "app_title": a.title,
            "home_url": url_for(a.home_endpoint),
            "role_label": a.store.roles.get(u.role, u.role) if u else "",
            "nav_items": [n for n in a.nav if a.allowed(u, n.permission)],
            "can": lambda perm: a.allowed(u, perm),
            "csrf_token": csrf.csrf_token,
        }


def secure_cookies(app: Flask, tls: bool) -> None:
    tls = tls or app.config.get("PREFERRED_URL_SCHEME") == "https"
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",  # Strict would drop the session when following a link from mail
        SESSION_COOKIE_SECURE=bool(tls),
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=SESSION_HOURS),
    )

    @app.after_request
    def _headers(resp: Any) -> Any:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        return resp
