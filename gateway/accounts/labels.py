"""Chinese names of audit actions, for the audit pages."""

from __future__ import annotations

AUDIT_ACTIONS = {
    "login.ok": "登录成功",
    "login.failed": "登录失败",
    "login.locked": "登录被拒（账户已锁定）",  # written by versions before the per-address throttle
    "login.throttled": "登录被拒（尝试过于频繁）",
    "logout": "退出登录",
    "user.add": "添加用户",
    "user.password": "重置密码",
    "user.password_change": "修改本人密码",
    "user.password_change.refused": "修改密码被拒（当前密码错误）",
    "user.role": "修改角色",
    "user.unlock": "解锁账户",
    "user.delete": "删除用户",
    "mapping.save": "保存映射版本",
    "mapping.rollback": "回滚映射版本",
    "record.save": "保存记录",
    "record.delete": "删除记录",
    "record.push": "推送记录",
    "spreadsheet.import": "导入表格",
    "dead_letter.retry": "重新推送被退回记录",
    "dead_letter.resolve": "标记被退回记录已处理",
    "sync.run": "手动同步",
    "receipts.export": "导出回执日志",
    "report.export": "导出通报",
}


def audit_label(action: str) -> str:
    return AUDIT_ACTIONS.get(action, action)
