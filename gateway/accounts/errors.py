"""One error handler per app: Chinese pages for people, {"error", "message"} JSON for scripts.

No stack trace or English exception text ever reaches a page; the exception is
logged with its trace instead.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from gateway.errors import GatewayError

log = logging.getLogger("gateway.web")

MESSAGES = {
    400: ("请求无效", "请求内容不完整或格式有误，请返回上一页重试。"),
    401: ("需要登录", "请先登录。"),
    403: ("无权访问", "您的账户角色无权进行此操作。如需权限，请联系管理员。"),
    404: ("页面不存在", "您访问的页面或记录不存在，可能已被删除或链接有误。"),
    405: ("操作方式不允许", "此地址不支持该请求方式。"),
    413: ("文件过大", "上传的文件超过了允许的大小。"),
    429: ("请求过于频繁", "请稍后再试。"),
    500: ("系统内部错误", "服务器处理请求时出错，已记录日志。请稍后重试或联系管理员。"),
    503: ("服务暂不可用", "依赖的服务暂时无法访问，请稍后重试。"),
}
CSRF_MESSAGE = "页面已过期或请求来源无法验证（CSRF 校验失败），请刷新页面后重试。"
_CJK = re.compile(r"[\u4e00-\u9fff]")


def wants_json() -> bool:
    if request.is_json or "/api/" in request.path or request.path.endswith(".json"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def chinese(text: object) -> str | None:
    """The text when it is meant for users (contains Chinese), else None."""
    s = str(text or "")
    return s if _CJK.search(s) else None


def error_response(code: int, detail: str | None = None, error: str | None = None):  # type: ignore[no-untyped-def]
    title, message = MESSAGES.get(code, MESSAGES[500] if code >= 500 else MESSAGES[400])
    if detail:
        message = detail
    if wants_json():
        return jsonify({"error": error or title, "message": message}), code
    return render_template("accounts/error.html", code=code, title=title, message=message), code


def _http(e: HTTPException):  # type: ignore[no-untyped-def]
    code = e.code or 500
    if code == 400 and e.description == "csrf":
        return error_response(400, CSRF_MESSAGE, error="csrf")
    return error_response(code, chinese(e.description))


def _domain(e: GatewayError):  # type: ignore[no-untyped-def]
    log.warning("domain error: %s", e)
    return error_response(400, chinese(e) or "操作未能完成，详情已记录在日志中。")


def _crash(e: Exception):  # type: ignore[no-untyped-def]
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500)


def install(target: Flask | Blueprint) -> None:
    """Register the handlers on an app (all its routes) or on one blueprint (its views only)."""
    reg = target.errorhandler
    reg(HTTPException)(_http)
    reg(GatewayError)(_domain)
    reg(Exception)(_crash)
