"""Password hashes with scrypt (hashlib): memory-hard, in the standard library, no extra dependency.

Stored form: ``scrypt$n$r$p$salt_b64$hash_b64`` so parameters can be raised later
without invalidating existing hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

N, R, P = 2**15, 8, 1  # ~0.1 s and 32 MiB per hash on the target machines
_MAXMEM = 64 * 1024 * 1024
MIN_LENGTH = 10


def hash_password(password: str, n: int | None = None, r: int = R, p: int = P) -> str:
    n = n or N
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            maxmem=_MAXMEM, dklen=len(want),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


# A hash of nothing anyone knows: checked against when the user does not exist,
# so a wrong user name takes as long as a wrong password.
_DUMMY = hash_password(os.urandom(16).hex())


def burn_time(password: str) -> None:
    verify_password(password, _DUMMY)


def password_problem(password: str, username: str = "") -> str | None:
    """Chinese reason why a new password is not acceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"密码至少需要 {MIN_LENGTH} 个字符"
    if username and username.lower() in password.lower():
        return "密码不能包含用户名"
    if len(set(password)) < 4:
        return "密码过于简单，请使用更多不同的字符"
    return None
