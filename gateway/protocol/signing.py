"""Request signatures: RFC 9530 Content-Digest and RFC 9421 HTTP message signatures.

Every request a gateway sends to the hub carries

    Content-Digest: sha-256=:<base64 of sha256(body)>:
    Signature-Input: sig1=("@method" "@path" "content-digest" "content-type" "protocol-version");
                     created=<unix>;nonce="<hex>";keyid="<id>";alg="ed25519"
    Signature: sig1=:<base64 signature over the signature base>:

A request with a query string also covers "@query" (after "@path"); a request
without a body sends no Content-Type and does not cover it. The three headers
are RFC 8941 dictionaries and are read as such (`http_sfv`): optional white
space is legal, other labels beside `sig1` are ignored (RFC 9421 §4.3), and the
signature base ends with the *serialisation* of the parsed inner list, not the
text as sent. `alg` names the suite (gateway/protocol/suites.py).

The hub also accepts the components older gateways cover (without
`content-type` and `protocol-version`), so those keep working.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from http_sfv import Dictionary, InnerList, Item, Token

from gateway.protocol.batch import PROTOCOL_VERSION, VERSION_HEADER
from gateway.protocol.suites import DEFAULT_SUITE, SUITES, Suite, UnknownSuite, suite_of

LABEL = "sig1"
ALG = DEFAULT_SUITE
DEFAULT_WINDOW = 300
REQUIRED_COMPONENTS = ("@method", "@path", "content-digest")
# Covered when the request carries them; not required, so that older gateways keep verifying.
OPTIONAL_COMPONENTS = ("content-type", "protocol-version")
DIGESTS: dict[str, Callable[[bytes], Any]] = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


class SignatureRefused(Exception):
    """A request's signature, digest, time, nonce or key is not acceptable.

    `reason` is a stable code the hub logs and returns as the `error` field;
    `status` is the HTTP status the hub answers with (401, or 403 for a revoked key).
    `message` names the actual cause, in Chinese and English.
    """

    def __init__(self, reason: str, message: str, status: int = 401, key_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.key_id = key_id


class KeyRevoked(Exception):
    """Raised by a `lookup_key` callable for a key that is registered but revoked."""


@dataclass(frozen=True)
class VerifiedRequest:
    key_id: str
    created: int
    nonce: str
    digest: str  # the Content-Digest value, as sent
    components: tuple[str, ...]
    suite: str = DEFAULT_SUITE


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The RFC 9530 Content-Digest header value for `body` (one member)."""
    return f"{algorithm}=:{b64(DIGESTS[algorithm](body).digest())}:"


def split_target(path: str) -> tuple[str, str | None]:
    """'/a/b?x=1' -> ('/a/b', '?x=1'); no query -> ('/a/b', None). Nothing is decoded."""
    p, sep, q = path.partition("?")
    return (p or "/"), (f"?{q}" if sep and q else None)


def _params_list(components: tuple[str, ...], params: Mapping[str, int | str]) -> InnerList:
    inner = InnerList()
    for c in components:
        inner.append(Item(c))
    for name, value in params.items():
        inner.params[name] = value
    return inner


def signature_params(
    components: tuple[str, ...], created: int, nonce: str, key_id: str, alg: str = DEFAULT_SUITE
) -> str:
    """The RFC 8941 serialisation of the covered components with their parameters."""
    return str(_params_list(components, {"created": created, "nonce": nonce, "keyid": key_id, "alg": alg}))


def signature_base(
    method: str,
    path: str,
    digest: str,
    params: str,
    components: tuple[str, ...],
    fields: Mapping[str, str] | None = None,
) -> bytes:
    """RFC 9421 §2.5: one `"<component>": <value>` line per covered component, then `"@signature-params"`.

    `path` is the request target as sent (never percent-decoded); `fields` holds
    the covered header fields other than content-digest, by lower-case name.
    """
    p, q = split_target(path)
    values = {"@method": method, "@path": p, "@query": q or "?", "content-digest": digest, **(fields or {})}
    lines = [f'"{c}": {values[c]}' for c in components]
    lines.append(f'"@signature-params": {params}')
    return "\n".join(lines).encode("utf-8")


def _components_for(path: str, content_type: str | None, protocol_version: str | None) -> tuple[str, ...]:
    _, q = split_target(path)
    out = ["@method", "@path", "@query", "content-digest"] if q else list(REQUIRED_COMPONENTS)
    if content_type is not None:
        out.append("content-type")
    if protocol_version is not None:
        out.append("protocol-version")
    return tuple(out)


def sign_request(
    method: str,
    path: str,
    body: bytes,
    key: Any,
    key_id: str,
    *,
    created: int | None = None,
    nonce: str | None = None,
    content_type: str | None = None,
    protocol_version: str | None = PROTOCOL_VERSION,
) -> dict[str, str]:
    """Headers that sign `method path` with `body`.

    `path` is the request target as sent (path plus optional '?query'). The
    result holds Content-Digest, Signature-Input and Signature, plus the
    covered Protocol-Version (unless None) and Content-Type (when given): send
    them as returned. The key's suite signs and names itself in `alg`.
    """
    if not _ID_RE.match(key_id):
        raise ValueError(f"key id {key_id!r}: use 1-128 letters, digits, '_', '.', ':' or '-'")
    s = suite_of(key)
    created = int(time.time()) if created is None else int(created)
    nonce = nonce or secrets.token_hex(16)
    digest = content_digest(body)
    components = _components_for(path, content_type, protocol_version)
    fields = {"content-type": content_type or "", "protocol-version": protocol_version or ""}
    params = signature_params(components, created, nonce, key_id, s.name)
    sig = s.sign(key, signature_base(method, path, digest, params, components, fields))
    headers = {"Content-Digest": digest, "Signature-Input": f"{LABEL}={params}", "Signature": f"{LABEL}=:{b64(sig)}:"}
    if protocol_version is not None:
        headers[VERSION_HEADER] = protocol_version
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


def _header(headers: Mapping[str, str], name: str) -> str | None:
    if name in headers:
        return headers[name]
    low = name.lower()
    for k, v in headers.items():
        if k.lower() == low:
            return v
    return None


def _dictionary(text: str, header: str, reason: str) -> Dictionary:
    d = Dictionary()
    try:
        d.parse(text.encode("latin-1"))
    except (ValueError, UnicodeEncodeError) as e:
        raise SignatureRefused(
            reason, f"{header} 不是 RFC 8941 字典 / {header} is not an RFC 8941 dictionary: {e}"
        ) from None
    return d


def check_digest(value: str, body: bytes) -> None:
    """Every sha-256/sha-512 member must match the body and at least one must be present; others are ignored."""
    d = _dictionary(value, "Content-Digest", "bad_digest")
    known = [a for a in d if a in DIGESTS]
    if not known:
        raise SignatureRefused(
            "bad_digest",
            f"Content-Digest 无 sha-256 或 sha-512 成员 / Content-Digest has no sha-256 or sha-512 member "
            f"(has: {', '.join(d) or 'none'})",
        )
    for a in known:
        member = d[a]
        if not isinstance(member, Item) or not isinstance(member.value, bytes):
            raise SignatureRefused("bad_digest", f"Content-Digest 的 {a} 不是字节序列 / {a} is not a byte sequence")
        if member.value != DIGESTS[a](body).digest():
            raise SignatureRefused(
                "digest_mismatch", f"请求体的 {a} 摘要不符 / Content-Digest {a} does not match the body"
            )


def _refuse_input(message: str, key_id: str | None = None) -> SignatureRefused:
    return SignatureRefused("bad_signature_input", message, key_id=key_id)


def _covered(inner: InnerList, path: str) -> tuple[str, ...]:
    components: list[str] = []
    for item in inner:
        if not isinstance(item, Item) or not isinstance(item.value, str) or isinstance(item.value, Token):
            raise _refuse_input("签名组件须为字符串 / each covered component must be an sf-string")
        if len(item.params):
            raise _refuse_input(f"不支持带参数的组件 / component parameters are not supported ({item})")
        if item.value in components:
            raise _refuse_input(f'组件 {item.value} 重复 / component "{item.value}" is repeated (RFC 9421 §2.5)')
        components.append(item.value)
    needed = _components_for(path, None, None)
    allowed = set(needed) | set(OPTIONAL_COMPONENTS)
    missing = [c for c in needed if c not in components]
    extra = [c for c in components if c not in allowed]
    if missing or extra:
        what = (f"缺少 / missing {' '.join(missing)}" if missing else "") + (
            f" 不允许 / not allowed {' '.join(extra)}" if extra else ""
        )
        raise _refuse_input(f"签名覆盖的组件不对 / signature must cover {' '.join(needed)}: {what.strip()}")
    return tuple(components)


def _string_param(params: Any, name: str, pattern: re.Pattern[str], key_id: str | None = None) -> str:
    value = params.get(name) if name in params else None
    if not isinstance(value, str) or isinstance(value, Token) or not pattern.match(value):
        raise _refuse_input(f"缺少或非法的 {name} / {name} missing or malformed", key_id)
    return value


def verify_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup_key: Callable[[str], Any],
    now: float | None = None,
    window: int = DEFAULT_WINDOW,
    suites: tuple[str, ...] = tuple(SUITES),
) -> VerifiedRequest:
    """Check digest, signature input, time window and signature. Raises SignatureRefused.

    `path` is the request target as received, not percent-decoded. `lookup_key(key_id)`
    returns the registered public key, None for an unknown key, or raises KeyRevoked.
    `suites` are the suite names this verifier accepts in `alg`. The nonce is returned but not
    remembered here: the caller keeps the replay cache (the hub keeps it in its database).
    """
    digest = _header(headers, "Content-Digest")
    sig_input = _header(headers, "Signature-Input")
    sig_header = _header(headers, "Signature")
    if not digest:
        raise SignatureRefused("missing_digest", "缺少 Content-Digest 头 / Content-Digest header missing")
    if not sig_input or not sig_header:
        raise SignatureRefused("missing_signature", "缺少签名头 / Signature-Input or Signature header missing")
    check_digest(digest, body)
    inputs = _dictionary(sig_input, "Signature-Input", "bad_signature_input")
    if LABEL not in inputs:
        raise _refuse_input(
            f"Signature-Input 无 {LABEL} / no {LABEL} in Signature-Input (labels: {', '.join(inputs) or 'none'})"
        )
    inner = inputs[LABEL]
    if not isinstance(inner, InnerList):
        raise _refuse_input(f"Signature-Input 的 {LABEL} 不是内部列表 / {LABEL} is not an inner list")
    components = _covered(inner, path)
    params = inner.params
    key_id = _string_param(params, "keyid", _ID_RE)
    nonce = _string_param(params, "nonce", _NONCE_RE, key_id)
    alg = params["alg"] if "alg" in params else DEFAULT_SUITE  # older gateways may omit it: today's suite
    if not isinstance(alg, str) or alg not in suites:
        raise _refuse_input(f"不支持的算法 {alg} / alg {alg!r} is not one of {', '.join(suites)}", key_id)
    created = params["created"] if "created" in params else None
    if not isinstance(created, int) or isinstance(created, bool):
        raise _refuse_input("缺少 created 或不是整数 / created missing or not an integer", key_id)
    now = time.time() if now is None else now
    if abs(now - created) > window:
        raise SignatureRefused(
            "clock_window",
            f"签名时间超出 ±{window} 秒窗口 / created {created} is outside ±{window}s of hub time {int(now)}",
            key_id=key_id,
        )
    expires = params["expires"] if "expires" in params else None
    if expires is not None and (not isinstance(expires, int) or expires < now):
        raise SignatureRefused("clock_window", f"签名已过期 / signature expired at {expires}", key_id=key_id)
    try:
        public = lookup_key(key_id)
    except KeyRevoked:
        raise SignatureRefused("key_revoked", f"密钥 {key_id} 已吊销 / key {key_id} is revoked", 403, key_id) from None
    if public is None:
        raise SignatureRefused("unknown_key", f"未登记的密钥 {key_id} / unknown key {key_id}", key_id=key_id)
    suite = _suite_for(public, alg, key_id)
    sigs = _dictionary(sig_header, "Signature", "bad_signature")
    member = sigs[LABEL] if LABEL in sigs else None
    if not isinstance(member, Item) or not isinstance(member.value, bytes):
        raise SignatureRefused(
            "bad_signature", f"Signature 无 {LABEL} 字节序列 / Signature has no {LABEL} byte sequence", key_id=key_id
        )
    fields = {}
    for c in components:
        if not c.startswith("@") and c != "content-digest":
            value = _header(headers, c)
            if value is None:
                raise _refuse_input(f"签名覆盖的头 {c} 不在请求中 / covered header {c} is absent", key_id)
            fields[c] = value.strip()
    base = signature_base(method, path, digest.strip(), str(inner), components, fields)
    if not suite.verify(public, member.value, base):
        raise SignatureRefused("bad_signature", "签名验证失败 / signature does not verify", key_id=key_id)
    return VerifiedRequest(key_id, created, nonce, digest.strip(), components, suite.name)


def _suite_for(public: Any, alg: str, key_id: str) -> Suite:
    try:
        s = suite_of(public)
    except UnknownSuite:
        raise SignatureRefused(
            "bad_signature", f"密钥 {key_id} 无算法套件 / key {key_id} has no suite", key_id=key_id
        ) from None
    if s.name != alg:
        raise _refuse_input(
            f"alg {alg} 与密钥 {key_id} 的套件 {s.name} 不符 / alg {alg!r} is not key {key_id}'s suite {s.name!r}",
            key_id,
        )
    return s
