"""Per-person accounts shared by the gateway admin UI and the hub operators' UI.

scrypt password hashes, roles and permissions, login throttling per account and address,
CSRF tokens, secure session cookies, the audit log, and Chinese error pages.
"""

from gateway.accounts.store import AccountError, AccountStore, LoginRefused, User

__all__ = ["AccountError", "AccountStore", "LoginRefused", "User"]
