"""Users, login checks with throttling and lockout, and the audit log writer.

Works on any pair of (users, audit) tables with the columns of
gateway.store.tables.users/audit, so the gateway and the hub share the code but
keep their own tables.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table, func, select

from gateway.accounts.passwords import burn_time, hash_password, password_problem, verify_password


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

    @property
    def shown_name(self) -> str:
        return self.display_name or self.username


class AccountError(Exception):
    """A refused account operation; the message is Chinese, for the user."""


class LoginRefused(AccountError):
    def __init__(self, message: str, locked: bool = False) -> None:
        super().__init__(message)
        self.locked = locked


class AddressThrottle:
    """Failed logins per remote address in a sliding window, kept in memory.

    Account lockout stops guessing one password; this stops one address
    trying many user names.
    """

    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit, self.window = limit, window_seconds
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, addr: str, now: float) -> deque[float]:
        q = self._fails.setdefault(addr, deque())
        while q and q[0] < now - self.window:
            q.popleft()
        return q

    def blocked(self, addr: str) -> bool:
        with self._lock:
            return len(self._recent(addr, time.monotonic())) >= self.limit

    def fail(self, addr: str) -> None:
        with self._lock:
            self._recent(addr, time.monotonic()).append(time.monotonic())


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
    ) -> None:
        self.engine, self.users, self.audit_table = engine, users, audit
        self.roles = dict(roles)
        self.max_failures = max_failures
        self.lockout = dt.timedelta(minutes=lockout_minutes)
        self.throttle = AddressThrottle(address_limit, self.lockout.total_seconds())

    # -- users -------------------------------------------------------------
    def _user(self, row: Any) -> User:
        tag = hashlib.sha256(row.password_hash.encode("utf-8")).hexdigest()[:16]
        return User(row.id, row.username, row.display_name or "", row.role, tag)

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
                select(u.id, u.username, u.display_name, u.role, u.failed_logins, u.locked_until, u.created_at)
                .order_by(u.username)
            ).mappings().all()
        return [dict(r) for r in rows]

    def count(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(self.users)).scalar_one())

    def add(self, username: str, password: str, role: str, display_name: str = "", actor: str = "cli") -> User:
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
                )
            )
            uid = int(res.inserted_primary_key[0])
            self._audit(c, actor, "user.add", username, None, {"role": role, "display_name": display_name})
        return self.get(uid)  # type: ignore[return-value]

    def set_password(self, username: str, password: str, actor: str) -> None:
        if problem := password_problem(password, username):
            raise AccountError(problem)
        with self.engine.begin() as c:
            n = c.execute(
                self.users.update().where(self.users.c.username == username)
                .values(password_hash=hash_password(password), failed_logins=0, locked_until=None)
            ).rowcount
            if not n:
                raise AccountError(f"用户 {username} 不存在")
            self._audit(c, actor, "user.password", username, None, None)

    def set_role(self, username: str, role: str, actor: str) -> None:
        if role not in self.roles:
            raise AccountError(f"未知角色 {role}")
        with self.engine.begin() as c:
            old = c.execute(select(self.users.c.role).where(self.users.c.username == username)).scalar()
            if old is None:
                raise AccountError(f"用户 {username} 不存在")
            c.execute(self.users.update().where(self.users.c.username == username).values(role=role))
            self._audit(c, actor, "user.role", username, {"role": old}, {"role": role})

    def unlock(self, username: str, actor: str) -> None:
        with self.engine.begin() as c:
            c.execute(
                self.users.update().where(self.users.c.username == username).values(failed_logins=0, locked_until=None)
            )
            self._audit(c, actor, "user.unlock", username, None, None)

    def delete(self, username: str, actor: str) -> None:
        with self.engine.begin() as c:
            row = c.execute(select(self.users).where(self.users.c.username == username)).first()
            if row is None:
                raise AccountError(f"用户 {username} 不存在")
            c.execute(self.users.delete().where(self.users.c.username == username))
            self._audit(c, actor, "user.delete", username, {"role": row.role}, None)

    # -- login -------------------------------------------------------------
    def authenticate(self, username: str, password: str, remote_addr: str | None = None) -> User:
        """The user when the password is right; LoginRefused (audited) otherwise."""
        addr = remote_addr or "-"
        if self.throttle.blocked(addr):
            self.record("login.throttled", username, remote_addr=remote_addr)
            raise LoginRefused("登录失败次数过多，请稍后再试")
        now = utcnow()
        with self.engine.connect() as c:
            row = c.execute(select(self.users).where(self.users.c.username == username)).first()
        if row is None:
            burn_time(password)
            self.throttle.fail(addr)
            self.record("login.failed", username, after={"reason": "unknown_user"}, remote_addr=remote_addr)
            raise LoginRefused("用户名或密码错误")
        if row.locked_until and dt.datetime.fromisoformat(row.locked_until) > now:
            self.throttle.fail(addr)
            self.record("login.locked", username, remote_addr=remote_addr)
            until = dt.datetime.fromisoformat(row.locked_until).strftime("%H:%M")
            raise LoginRefused(f"账户已锁定，请于 {until}（UTC）后再试或联系管理员解锁", locked=True)
        if not verify_password(password, row.password_hash):
            self.throttle.fail(addr)
            failures = (row.failed_logins or 0) + 1
            locked_until = iso(now + self.lockout) if failures >= self.max_failures else None
            with self.engine.begin() as c:
                c.execute(
                    self.users.update().where(self.users.c.id == row.id)
                    .values(failed_logins=0 if locked_until else failures, locked_until=locked_until)
                )
                self._audit(c, username, "login.failed", username, None,
                            {"reason": "bad_password", "failures": failures, "locked_until": locked_until},
                            remote_addr)
            if locked_until:
                minutes = int(self.lockout.total_seconds() // 60)
                raise LoginRefused(f"连续 {failures} 次密码错误，账户已锁定 {minutes} 分钟", locked=True)
            raise LoginRefused("用户名或密码错误")
        with self.engine.begin() as c:
            c.execute(self.users.update().where(self.users.c.id == row.id).values(failed_logins=0, locked_until=None))
            self._audit(c, username, "login.ok", username, None, None, remote_addr)
        return self._user(row)

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
