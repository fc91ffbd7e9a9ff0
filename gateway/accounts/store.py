"""Users, login checks with throttling (gateway.accounts.throttle), and the audit log writer.

Works on any pair of (users, audit) tables with the columns of
gateway.store.tables.users/audit, so the gateway and the hub share the code but
keep their own tables.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table, func, select

from gateway.accounts.passwords import burn_time, hash_password, password_problem, verify_password
from gateway.accounts.throttle import LoginThrottle, address_key
from gateway.logs import log

LOG = logging.getLogger("gateway.accounts")
KNOWN_ADDRESS_DAYS = 90  # a login from an address within this long makes it "known" for the account


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    # Changes whenever the password does: sessions carry it, so a reset ends them all.
    session_tag: str = ""
    # A one-time password (set by an admin or printed by the demo): the UIs ask for a new one first.
    must_change_password: bool = False

    @property
    def shown_name(self) -> str:
        return self.display_name or self.username


class AccountError(Exception):
    """A refused account operation; the message is Chinese, for the user."""


class LoginRefused(AccountError):
    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # set when throttled: the attempt was not checked at all


class AccountStore:
    def __init__(
        self,
        engine: Engine,
        users: Table,
        audit: Table,
        roles: Mapping[str, str],
        max_failures: int = 5,
        lockout_minutes: float = 15,
        address_limit: int = 30,
        account_limit: int = 100,
    ) -> None:
        self.engine, self.users, self.audit_table = engine, users, audit
        self.roles = dict(roles)
        # Roles are listed from most to least permission (gateway.accounts.roles): the first manages users
        # and must keep one holder; the last is what a new account gets unless told otherwise.
        self.admin_role, self.least_role = next(iter(self.roles)), next(reversed(self.roles))
        # max_failures: free failures per (account, address) before delays start; lockout_minutes: the
        # window and the longest delay. No hard lock-out: see gateway/accounts/throttle.py.
        self.throttle = LoginThrottle(max_failures, lockout_minutes * 60, address_limit=address_limit,
                                      account_limit=account_limit)
        self._known: dict[str, set[str]] = {}  # username -> address keys it logged in from
        self._known_lock = threading.Lock()

    # -- users -------------------------------------------------------------
    def _user(self, row: Any) -> User:
        tag = hashlib.sha256(row.password_hash.encode("utf-8")).hexdigest()[:16]
        return User(row.id, row.username, row.display_name or "", row.role, tag, bool(row.must_change_password))

    def get(self, user_id: int) -> User | None:
        with self.engine.connect() as c:
            row = c.execute(select(self.users).where(self.users.c.id == user_id)).first()
        return self._user(row) if row else None

    def by_name(self, username: str) -> User | None:
        with self.engine.connect() as c:
            row = c.execute(select(self.users).where(self.users.c.username == username)).first()
        return self._user(row) if row else None

    def list(self) -> list[dict[str, Any]]:
        u = self.users.c
        with self.engine.connect() as c:
            rows = c.execute(
                select(u.id, u.username, u.display_name, u.role, u.failed_logins, u.locked_until, u.created_at,
                       u.must_change_password)
                .order_by(u.username)
            ).mappings().all()
        return [dict(r) for r in rows]

    def count(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(self.users)).scalar_one())

    def add(self, username: str, password: str, role: str, display_name: str = "", actor: str = "cli",
            one_time: bool = False) -> User:
        """Create an account; `one_time`: the password was chosen for the user, who must replace it at first login."""
        username = username.strip()
        if not username or len(username) > 64 or any(ch.isspace() for ch in username):
            raise AccountError("用户名须为 1-64 个字符且不含空白")
        if role not in self.roles:
            raise AccountError(f"未知角色 {role}，可选：{'、'.join(f'{k}（{v}）' for k, v in self.roles.items())}")
        if problem := password_problem(password, username):
            raise AccountError(problem)
        if self.by_name(username):
            raise AccountError(f"用户 {username} 已存在")
        with self.engine.begin() as c:
            res = c.execute(
                self.users.insert().values(
                    username=username, display_name=display_name, password_hash=hash_password(password),
                    role=role, failed_logins=0, locked_until=None, created_at=iso(utcnow()),
                    must_change_password=one_time,
                )
            )
            uid = int(res.inserted_primary_key[0])
            self._audit(c, actor, "user.add", username, None,
                        {"role": role, "display_name": display_name, **({"one_time": True} if one_time else {})})
        return self.get(uid)  # type: ignore[return-value]

    def set_password(self, username: str, password: str, actor: str, one_time: bool = False) -> None:
        """Reset a password (ends the user's sessions); `one_time`: the user must replace it at next login."""
        if problem := password_problem(password, username):
            raise AccountError(problem)
        with self.engine.begin() as c:
            n = c.execute(
                self.users.update().where(self.users.c.username == username)
                .values(password_hash=hash_password(password), failed_logins=0, locked_until=None,
                        must_change_password=one_time)
            ).rowcount
            if not n:
                raise AccountError(f"用户 {username} 不存在")
            self._audit(c, actor, "user.password", username, None, {"one_time": True} if one_time else None)

    def change_own_password(self, username: str, current: str, new: str, remote_addr: str | None = None) -> User:
        """The user replaces their password, proving the current one; their other sessions end (new tag)."""
        addr = remote_addr or "-"
        # A wrong current password counts as a failed login: a left-open session must not become a guessing oracle.
        refusal = self.throttle.check(username, addr, lambda: self._known_address(username, addr))
        if refusal is not None:
            raise AccountError(refusal.message)
        with self.engine.connect() as c:
            row = c.execute(select(self.users).where(self.users.c.username == username)).first()
        if row is None:
            raise AccountError(f"用户 {username} 不存在")
        if not verify_password(current, row.password_hash):
            self.throttle.fail(username, addr)
            self.record("user.password_change.refused", username, actor=username,
                        after={"reason": "bad_current_password"}, remote_addr=remote_addr)
            raise AccountError("当前密码不正确")
        if new == current:
            raise AccountError("新密码不能与当前密码相同")
        if problem := password_problem(new, username):
            raise AccountError(problem)
        with self.engine.begin() as c:
            c.execute(self.users.update().where(self.users.c.id == row.id).values(
                password_hash=hash_password(new), failed_logins=0, locked_until=None, must_change_password=False))
            self._audit(c, username, "user.password_change", username,
                        {"one_time": True} if row.must_change_password else None, None, remote_addr)
        return self.get(row.id)  # type: ignore[return-value]

    def _keep_an_admin(self, c: Any, username: str, actor: str, change: str) -> Any:
        """The user's row, locked; AccountError if `actor` is changing themself or it would leave no admin.

        `change`: "role" or "delete", for the message.
        """
        label = self.roles[self.admin_role]
        if username == actor:
            what = "修改自己的角色" if change == "role" else "删除自己的账户"
            raise AccountError(f"不能{what}：请由另一位{label}操作")
        u = self.users.c
        # Lock the admins' rows (PostgreSQL; SQLite has one writer anyway): two admins demoting each other
        # at once must not both pass the count below.
        admins = c.execute(select(u.username).where(u.role == self.admin_role).with_for_update()).scalars().all()
        row = c.execute(select(self.users).where(u.username == username)).first()
        if row is None:
            raise AccountError(f"用户 {username} 不存在")
        if row.role == self.admin_role and len(admins) <= 1:
            what = f"修改最后一位{label}的角色" if change == "role" else f"删除最后一位{label}"
            raise AccountError(f"不能{what}：系统至少需要一位{label}，请先将另一位用户设为{label}")
        return row

    def set_role(self, username: str, role: str, actor: str) -> None:
        """Change a role; never the actor's own, never the last admin's (AccountError)."""
        if role not in self.roles:
            raise AccountError(f"未知角色 {role}")
        with self.engine.begin() as c:
            old = self._keep_an_admin(c, username, actor, "role").role
            c.execute(self.users.update().where(self.users.c.username == username).values(role=role))
            self._audit(c, actor, "user.role", username, {"role": old}, {"role": role})

    def unlock(self, username: str, actor: str) -> None:
        self.throttle.reset(username)
        with self.engine.begin() as c:
            c.execute(
                self.users.update().where(self.users.c.username == username).values(failed_logins=0, locked_until=None)
            )
            self._audit(c, actor, "user.unlock", username, None, None)

    def delete(self, username: str, actor: str) -> None:
        """Delete an account; never the actor's own, never the last admin (AccountError)."""
        with self.engine.begin() as c:
            row = self._keep_an_admin(c, username, actor, "delete")
            c.execute(self.users.delete().where(self.users.c.username == username))
            self._audit(c, actor, "user.delete", username, {"role": row.role}, None)

    # -- login -------------------------------------------------------------
    def authenticate(self, username: str, password: str, remote_addr: str | None = None,
                     via: str | None = None) -> User:
        """The user when the password is right; LoginRefused (audited and logged) otherwise.

        `remote_addr`: the client's address (forwarded by a trusted proxy or the peer's);
        `via`: the proxy it came through, recorded beside it.
        """
        addr = remote_addr or "-"
        where = {"via": via} if via else {}
        refusal = self.throttle.check(username, addr, lambda: self._known_address(username, addr))
        if refusal is not None:
            self._refused("login.throttled", username, remote_addr, {"rule": refusal.rule,
                          "retry_after": refusal.retry_after, **where})
            raise LoginRefused(refusal.message, retry_after=refusal.retry_after)
        with self.engine.connect() as c:
            row = c.execute(select(self.users).where(self.users.c.username == username)).first()
        if row is None:
            burn_time(password)
            self.throttle.fail(username, addr)
            self._refused("login.failed", username, remote_addr, {"reason": "unknown_user", **where})
            raise LoginRefused("用户名或密码错误")
        if not verify_password(password, row.password_hash):
            self.throttle.fail(username, addr)
            failures = (row.failed_logins or 0) + 1  # since the last success, shown on the users page
            with self.engine.begin() as c:
                c.execute(self.users.update().where(self.users.c.id == row.id).values(failed_logins=failures))
                self._refused("login.failed", username, remote_addr,
                              {"reason": "bad_password", "failures": failures, **where}, conn=c)
            raise LoginRefused("用户名或密码错误")
        self.throttle.succeed(username, addr)
        with self._known_lock:
            if username in self._known:
                self._known[username].add(address_key(addr))
        with self.engine.begin() as c:
            c.execute(self.users.update().where(self.users.c.id == row.id).values(failed_logins=0, locked_until=None))
            self._audit(c, username, "login.ok", username, None, where or None, remote_addr)
        return self._user(row)

    def _refused(self, action: str, username: str, remote_addr: str | None, after: dict[str, Any],
                 conn: Any = None) -> None:
        log(LOG, logging.WARNING, f"login refused ({action.removeprefix('login.')})", account=username,
            address=remote_addr, **after)
        self.record(action, username, after=after, remote_addr=remote_addr, conn=conn)

    def _known_address(self, username: str, addr: str) -> bool:
        """Has `username` logged in from `addr` (its /64 for IPv6) lately? Read from the audit log once."""
        with self._known_lock:
            known = self._known.get(username)
        if known is None:
            with self.engine.connect() as c:
                if c.execute(select(self.users.c.id).where(self.users.c.username == username)).first() is None:
                    return False  # not cached: unknown names must not grow memory
                a = self.audit_table.c
                since = (utcnow() - dt.timedelta(days=KNOWN_ADDRESS_DAYS)).isoformat(timespec="milliseconds")
                rows = c.execute(
                    select(a.remote_addr).distinct()
                    .where(a.action == "login.ok", a.target == username, a.at >= since, a.remote_addr.is_not(None))
                ).scalars()
                known = {address_key(r) for r in rows}
            with self._known_lock:
                known = self._known.setdefault(username, known)
        return address_key(addr) in known

    # -- audit -------------------------------------------------------------
    def _audit(self, conn: Any, actor: str, action: str, target: str | None,
               before: Any, after: Any, remote_addr: str | None = None) -> None:
        def js(v: Any) -> str | None:
            return None if v is None else json.dumps(v, ensure_ascii=False, default=str, sort_keys=True)

        conn.execute(self.audit_table.insert().values(
            at=utcnow().isoformat(timespec="milliseconds"), actor=actor, action=action, target=target,
            before=js(before), after=js(after), remote_addr=remote_addr,
        ))

    def record(self, action: str, target: str | None = None, *, actor: str | None = None,
               before: Any = None, after: Any = None, remote_addr: str | None = None, conn: Any = None) -> None:
        """Write one audit row; pass `conn` to commit it with the change it describes."""
        who = actor if actor is not None else (target or "-")
        if conn is not None:
            self._audit(conn, who, action, target, before, after, remote_addr)
            return
        with self.engine.begin() as c:
            self._audit(c, who, action, target, before, after, remote_addr)

    def audit_page(self, before_id: int | None = None, limit: int = 100, actor: str | None = None,
                   action: str | None = None) -> list[dict[str, Any]]:
        a = self.audit_table.c
        q = select(self.audit_table).order_by(a.id.desc()).limit(limit)
        if before_id:
            q = q.where(a.id < before_id)
        if actor:
            q = q.where(a.actor == actor)
        if action:
            q = q.where(a.action.startswith(action))
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]
