"""Roles of the two user interfaces and what each may do."""

from __future__ import annotations

# Each listed from most to least permission (AccountStore relies on it): the first manages users and
# must always have one holder; the last is the add-user form's default.
GATEWAY_ROLES = {"admin": "管理员", "clerk": "录入员", "viewer": "查看者"}
HUB_ROLES = {"operator": "运维人员", "viewer": "查看者"}

# Permission -> roles that hold it. Views name a permission, not a role list,
# so the rule "clerk cannot edit mappings" lives in one place.
GATEWAY_PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset({"admin", "clerk", "viewer"}),
    "edit_records": frozenset({"admin", "clerk"}),
    "manage_deliveries": frozenset({"admin", "clerk"}),
    "edit_mappings": frozenset({"admin"}),
    "run_sync": frozenset({"admin"}),
    "manage_users": frozenset({"admin"}),
}

HUB_PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset({"operator", "viewer"}),
    "export": frozenset({"operator"}),
    "import_records": frozenset({"operator"}),  # a signed workbook from a lower level, stored as received
    "view_confidential": frozenset({"operator"}),  # fields marked confidential in the standard
    "manage_users": frozenset({"operator"}),
}
