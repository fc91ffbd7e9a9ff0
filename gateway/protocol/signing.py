"""Request signatures: RFC 9530 Content-Digest and RFC 9421 style HTTP message signatures.

Every request a gateway sends to the hub carries

    Content-Digest: sha-256=:<base64 of sha256(body)>:
    Signature-Input: sig1=("@method" "@path" "content-digest");created=<unix>;nonce="<hex>";keyid="<id>";alg="ed25519"
    Signature: sig1=:<base64 Ed25519 signature over the signature base>:

A request with a query string also covers "@query" (placed after "@path").
The signature base is built as RFC 9421 §2.5 says: one line per covered
component, `"<name>": <value>`, then `"@signature-params": <the inner list as
sent in Signature-Input>`, lines joined by LF with no trailing LF.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

LABEL = "sig1"
ALG = "ed25519"
DEFAULT_WINDOW = 300
REQUIRED_COMPONENTS = ("@method", "@path", "content-digest")
_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


class SignatureRefused(Exception):
    """A request's signature, digest, time, nonce or key is not acceptable.

    `reason` is a stable code the hub logs and returns as the `error` field;
    `status` is the HTTP status the hub answers with (401, or 403 for a revoked key).
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


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def content_digest(body: bytes) -> str:
    """The RFC 9530 Content-Digest header value for `body`."""
    return f"sha-256=:{b64(hashlib.sha256(body).digest())}:"


def split_target(path: str) -> tuple[str, str | None]:
    """'/a/b?x=1' -> ('/a/b', '?x=1'); no query -> ('/a/b', None)."""
    p, sep, q = path.partition("?")
    return p, (f"?{q}" if sep and q else None)


def signature_params(components: tuple[str, ...], created: int, nonce: str, key_id: str) -> str:
    inner = " ".join(f'"{c}"' for c in components)
    return f'({inner});created={created};nonce="{nonce}";keyid="{key_id}";alg="{ALG}"'


def signature_base(method: str, path: str, digest: str, params: str, components: tuple[str, ...]) -> bytes:
    p, q = split_target(path)
    values = {"@method": method.upper(), "@path": p, "@query": q or "?", "content-digest": digest}
    lines = [f'"{c}": {values[c]}' for c in components]
    lines.append(f'"@signature-params": {params}')
    return "\n".join(lines).encode("utf-8")


def _components_for(path: str) -> tuple[str, ...]:
    _, q = split_target(path)
    return ("@method", "@path", "@query", "content-digest") if q else REQUIRED_COMPONENTS


def sign_request(
    method: str,
    path: str,
    body: bytes,
    key: Ed25519PrivateKey,
    key_id: str,
    *,
    created: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers that sign `method path` with `body`: Content-Digest, Signature-Input, Signature.

    `path` is the request target as sent (path plus optional '?query').
    """
    if not _ID_RE.match(key_id):
        raise ValueError(f"key id {key_id!r}: use 1-128 letters, digits, '_', '.', ':' or '-'")
    created = int(time.time()) if created is None else int(created)
    nonce = nonce or secrets.token_hex(16)
    digest = content_digest(body)
    components = _components_for(path)
    params = signature_params(components, created, nonce, key_id)
    sig = key.sign(signature_base(method, path, digest, params, components))
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{LABEL}={params}",
        "Signature": f"{LABEL}=:{b64(sig)}:",
    }


_INPUT_RE = re.compile(r'^\s*([a-z][a-z0-9_-]*)=(\(([^()]*)\)((?:;[a-z]+=(?:"[^"]*"|\d+))*))\s*$')
_PARAM_RE = re.compile(r';([a-z]+)=("([^"]*)"|(\d+))')
_SIG_RE = re.compile(r"^\s*([a-z][a-z0-9_-]*)=:([A-Za-z0-9+/=]*):\s*$")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    if name in headers:
        return headers[name]
    low = name.lower()
    for k, v in headers.items():
        if k.lower() == low:
            return v
    return None


def verify_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup_key: Callable[[str], Ed25519PublicKey | None],
    now: float | None = None,
    window: int = DEFAULT_WINDOW,
) -> VerifiedRequest:
    """Check digest, signature input, time window and signature. Raises SignatureRefused.

    `lookup_key(key_id)` returns the registered public key, None for an unknown
    key, or raises KeyRevoked. The nonce is returned but not remembered here:
    the caller keeps the replay cache (the hub keeps it in its database).
    """
    digest = _header(headers, "Content-Digest")
    sig_input = _header(headers, "Signature-Input")
    sig_header = _header(headers, "Signature")
    if not digest:
        raise SignatureRefused("missing_digest", "缺少 Content-Digest 头 / Content-Digest header missing")
    if not sig_input or not sig_header:
        raise SignatureRefused("missing_signature", "缺少签名头 / Signature-Input or Signature header missing")
    if digest.strip() != content_digest(body):
        raise SignatureRefused("digest_mismatch", "请求体摘要不符 / Content-Digest does not match the body")
    m = _INPUT_RE.match(sig_input)
    if not m or m.group(1) != LABEL:
        raise SignatureRefused("bad_signature_input", f"Signature-Input 格式错误 / malformed Signature-Input (label must be {LABEL})")
    params_text = m.group(2)
    components = tuple(c.strip('"') for c in m.group(3).split())
    params: dict[str, str] = {}
    for pm in _PARAM_RE.finditer(m.group(4)):
        params[pm.group(1)] = pm.group(3) if pm.group(3) is not None else pm.group(4)
    needed = _components_for(path)
    if not set(needed) <= set(components) or not set(components) <= {"@method", "@path", "@query", "content-digest"}:
        raise SignatureRefused(
            "bad_signature_input", f"签名须覆盖 {' '.join(needed)} / signature must cover exactly {' '.join(needed)}"
        )
    key_id = params.get("keyid", "")
    nonce = params.get("nonce", "")
    if not key_id or not _ID_RE.match(key_id):
        raise SignatureRefused("bad_signature_input", "缺少或非法的 keyid / keyid missing or malformed")
    if params.get("alg", ALG) != ALG:
        raise SignatureRefused("bad_signature_input", f"不支持的算法 / alg must be {ALG}", key_id=key_id)
    if not _NONCE_RE.match(nonce):
        raise SignatureRefused("bad_signature_input", "缺少或非法的 nonce / nonce missing or malformed", key_id=key_id)
    if "created" not in params:
        raise SignatureRefused("bad_signature_input", "缺少 created / created missing", key_id=key_id)
    created = int(params["created"])
    now = time.time() if now is None else now
    if abs(now - created) > window:
        raise SignatureRefused(
            "clock_window",
            f"签名时间超出 ±{window} 秒窗口 / created {created} is outside ±{window}s of hub time {int(now)}",
            key_id=key_id,
        )
    try:
        public = lookup_key(key_id)
    except KeyRevoked:
        raise SignatureRefused("key_revoked", f"密钥 {key_id} 已吊销 / key {key_id} is revoked", 403, key_id) from None
    if public is None:
        raise SignatureRefused("unknown_key", f"未登记的密钥 {key_id} / unknown key {key_id}", key_id=key_id)
    s = _SIG_RE.match(sig_header)
    if not s or s.group(1) != LABEL:
        raise SignatureRefused("bad_signature", "Signature 格式错误 / malformed Signature header", key_id=key_id)
    try:
        sig = base64.b64decode(s.group(2), validate=True)
    except binascii.Error:
        raise SignatureRefused("bad_signature", "Signature 不是 base64 / Signature is not base64", key_id=key_id) from None
    base = signature_base(method, path, digest.strip(), params_text, components)
    try:
        public.verify(sig, base)
    except InvalidSignature:
        raise SignatureRefused("bad_signature", "签名验证失败 / signature does not verify", key_id=key_id) from None
    return VerifiedRequest(key_id=key_id, created=created, nonce=nonce, digest=digest.strip(), components=components)
