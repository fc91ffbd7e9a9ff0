"""The signing layer against independent implementations, both ends, both directions.

`http-message-signatures` (RFC 9421, on `http-sf`) verifies the gateway's real
requests and signs requests the real hub (on loopback) must accept; OpenSSL's
command line verifies the hub's receipt signatures (they are signatures over the
body bytes, not HTTP message signatures). Then the legal and illegal requests of
issue 17 against the real hub: legal ones are accepted, the illegal one is
refused with a message that names its cause.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, HTTPMessageVerifier, MappingKeyResolver, algorithms
from http_message_signatures.digests import ContentDigest

from gateway.protocol.signing import (
    SignatureRefused,
    b64,
    content_digest,
    sign_request,
    signature_base,
    verify_request,
)
from gateway.push.client import push_pending
from tests.fixtures.faultproxy import HOP_BY_HOP, relay_server, send_head
from tests.fixtures.hub import batch_body, record, sample
from tests.fixtures.push import Edit, GatewayDir, enqueue, material, mkey

BATCHES = "/api/v1/batches"
COMPONENTS = ("@method", "@path", "content-digest", "content-type", "protocol-version")


class Sha512Digest(ContentDigest):
    algorithm = "sha-512"


class Captured:
    """Relays to the hub and keeps every request exactly as it arrived: method, target, headers, body."""

    def __init__(self, upstream: str) -> None:
        u = urlsplit(upstream)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 80)
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.server = relay_server(self.handle)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        self.requests.append((h.command, h.path, dict(h.headers.items()), body))
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.request(
                h.command,
                h.path,
                body=body,
                headers={k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            r = conn.getresponse()
            status, headers, data = r.status, r.getheaders(), r.read()
        finally:
            conn.close()
        send_head(h, status, headers, len(data))
        h.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def captured(live_hub: Any) -> Iterator[Captured]:
    c = Captured(live_hub.url)
    yield c
    c.close()


class Message:
    """The request shape the library reads: method, absolute URL, headers."""

    def __init__(self, method: str, url: str, headers: dict[str, str]) -> None:
        self.method, self.url, self.headers = method, url, requests.structures.CaseInsensitiveDict(headers)


def library_verifier(key_id: str, key: Ed25519PrivateKey) -> HTTPMessageVerifier:
    return HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={key_id: key.public_key()}, private_keys={}),
    )


def library_signed(
    live_hub: Any, body: bytes, *, digest: type[ContentDigest] = ContentDigest, extra_digest: bool = False
) -> requests.PreparedRequest:
    """A batch POST signed by the library (label sig1) with the department's key, digest made by the library."""
    prep = requests.Request(
        "POST", live_hub.url + BATCHES, data=body, headers={"Content-Type": "application/json", "Protocol-Version": "1"}
    ).prepare()
    value = digest.create(body)
    if extra_digest:  # RFC 9530 allows several members; the other algorithm too
        other = Sha512Digest if digest is ContentDigest else ContentDigest
        value = f"{value}, {other.create(body)}"
    prep.headers["Content-Digest"] = value
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={live_hub.key_id: live_hub.key}),
    )
    signer.sign(
        prep,
        key_id=live_hub.key_id,
        label="sig1",
        nonce=secrets.token_hex(16),
        covered_component_ids=COMPONENTS,
        body=body,
        use_existing_digest=True,
    )
    return prep


def accepted(resp: requests.Response) -> bool:
    return resp.status_code == 200 and resp.json()["results"][0]["status"] == "accepted"


def one_material(n: int) -> bytes:
    return batch_body([record("material", sample("material", n), seq=1)])


# --- the gateway's real requests verify with the library -------------------------------------------------------


def test_the_gateways_real_requests_verify_with_the_independent_library(
    gateway_dir: GatewayDir, live_hub: Any, captured: Captured
) -> None:
    config = gateway_dir.for_hub(live_hub, url=captured.url)
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(3)])
    summary = push_pending(config, engine, give_up_after=0)
    assert summary.accepted == 3 and captured.requests
    method, target, headers, body = captured.requests[0]
    msg = Message(method, captured.url + target, headers)
    results = library_verifier(live_hub.key_id, live_hub.key).verify(msg, require_components=COMPONENTS, body=body)
    assert [r.label for r in results] == ["sig1"] and results[0].parameters["alg"] == "ed25519"
    # The library holds the digest to the body too: one changed byte and it refuses.
    with pytest.raises(Exception, match="(?i)digest"):
        library_verifier(live_hub.key_id, live_hub.key).verify(msg, body=body + b" ")


# --- the hub's receipts verify with OpenSSL ---------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")
def test_the_hubs_receipt_signature_verifies_with_openssl(live_hub: Any, tmp_path: Path) -> None:
    r = live_hub.post(BATCHES, one_material(1))
    assert r.status_code == 200
    # Receipts are signed as body bytes (Receipt-Signature), not as HTTP message signatures: check them that way.
    assert "Signature-Input" not in r.headers
    raw = base64.b64decode(live_hub.hub_public_key)
    pub = serialization.load_der_public_key(bytes.fromhex("302a300506032b6570032100") + raw)
    (tmp_path / "hub.pem").write_bytes(
        pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "receipt").write_bytes(r.content)
    (tmp_path / "sig").write_bytes(base64.b64decode(r.headers["Receipt-Signature"].strip(":")))

    def openssl_verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "openssl",
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "hub.pem",
                "-rawin",
                "-in",
                "receipt",
                "-sigfile",
                "sig",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )

    ok = openssl_verify()
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout
    (tmp_path / "receipt").write_bytes(r.content.replace(b'"accepted"', b'"rejected"'))
    assert openssl_verify().returncode != 0


# --- the hub accepts what the library signs, and the legal cases -------------------------------------------------


def test_the_hub_accepts_a_request_signed_by_the_independent_library(live_hub: Any) -> None:
    r = live_hub.session.send(library_signed(live_hub, one_material(1)), timeout=30)
    assert accepted(r), r.text


def test_the_hub_accepts_a_sha512_digest(live_hub: Any) -> None:
    r = live_hub.session.send(library_signed(live_hub, one_material(1), digest=Sha512Digest), timeout=30)
    assert accepted(r), r.text


@pytest.mark.parametrize("first", [ContentDigest, Sha512Digest])
def test_the_hub_accepts_several_digest_members(live_hub: Any, first: type[ContentDigest]) -> None:
    prep = library_signed(live_hub, one_material(1), digest=first, extra_digest=True)
    assert prep.headers["Content-Digest"].count(", ") == 1
    r = live_hub.session.send(prep, timeout=30)
    assert accepted(r), r.text


def test_the_hub_accepts_optional_whitespace_in_signature_input(live_hub: Any) -> None:
    body = one_material(1)
    h = sign_request("POST", BATCHES, body, live_hub.key, live_hub.key_id, content_type="application/json")
    inner = h["Signature-Input"].removeprefix("sig1=")
    # RFC 8941: spaces inside the inner list, after ';' of a parameter, around the dictionary's ','.
    spaced = "sig1=(  " + inner[1:].replace('" "', '"   "').replace(")", " )", 1).replace(";", ";  ")
    h["Signature-Input"] = f'{spaced} ,  sig0=("@method");keyid="x"'
    r = live_hub.session.post(live_hub.url + BATCHES, data=body, headers=h, timeout=30)
    assert accepted(r), r.text


def test_the_hub_verifies_sig1_and_ignores_a_second_signature(live_hub: Any) -> None:
    prep = library_signed(live_hub, one_material(1))
    stranger = Ed25519PrivateKey.generate()
    HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={"proxy-1": stranger}),
    ).sign(
        prep,
        key_id="proxy-1",
        label="proxy",
        covered_component_ids=("@method", "@path"),
        append_if_signature_exists=True,
        use_existing_digest=True,
    )
    assert "proxy=" in prep.headers["Signature"] and "sig1=" in prep.headers["Signature"]
    r = live_hub.session.send(prep, timeout=30)
    assert accepted(r), r.text


def test_the_hub_still_accepts_the_components_older_gateways_cover(live_hub: Any) -> None:
    body = one_material(1)
    h = sign_request("POST", BATCHES, body, live_hub.key, live_hub.key_id, protocol_version=None)
    assert h["Signature-Input"].startswith('sig1=("@method" "@path" "content-digest");')
    r = live_hub.session.post(
        live_hub.url + BATCHES,
        data=body,
        timeout=30,
        headers={**h, "Protocol-Version": "1", "Content-Type": "application/json"},
    )
    assert accepted(r), r.text


# --- the illegal cases: refused, with the cause named ------------------------------------------------------------


def hand_signed(
    key: Ed25519PrivateKey, key_id: str, body: bytes, components: tuple[str, ...], created: int
) -> dict[str, str]:
    """Headers signed over exactly `components` (repeats included), as a careless client would."""
    digest = content_digest(body)
    inner = " ".join(f'"{c}"' for c in components)
    params = f'({inner});created={created};nonce="{"a" * 32}";keyid="{key_id}";alg="ed25519"'
    fields = {"content-type": "application/json", "protocol-version": "1"}
    sig = key.sign(signature_base("POST", BATCHES, digest, params, components, fields))
    return {
        "Content-Digest": digest,
        "Signature-Input": f"sig1={params}",
        "Signature": f"sig1=:{b64(sig)}:",
        "Content-Type": "application/json",
        "Protocol-Version": "1",
    }


def test_the_hub_refuses_a_repeated_component_and_names_it(live_hub: Any) -> None:
    body = one_material(1)
    created = int(dt.datetime.now(dt.UTC).timestamp())
    h = hand_signed(live_hub.key, live_hub.key_id, body, ("@method", "@path", "@path", "content-digest"), created)
    r = live_hub.session.post(live_hub.url + BATCHES, data=body, headers=h, timeout=30)
    assert r.status_code == 401
    assert r.json()["error"] == "bad_signature_input"
    assert '"@path" is repeated' in r.json()["message"]


@pytest.mark.parametrize(
    "change, reason, cause",
    [
        (lambda h: {**h, "Content-Digest": "md5=:AAAA:"}, "bad_digest", "no sha-256 or sha-512 member"),
        (lambda h: {**h, "Content-Digest": h["Content-Digest"] + ", sha-512=:AAAA:"}, "digest_mismatch", "sha-512"),
        (
            lambda h: {**h, "Signature-Input": h["Signature-Input"].replace("sig1=", "sig2=")},
            "bad_signature_input",
            "no sig1 in Signature-Input (labels: sig2)",
        ),
        (
            lambda h: {
                **h,
                "Signature-Input": h["Signature-Input"].replace('"content-digest"', '"content-digest" "date"'),
            },
            "bad_signature_input",
            "not allowed date",
        ),
        (
            lambda h: {**h, "Signature-Input": h["Signature-Input"].replace('"@path" ', "")},
            "bad_signature_input",
            "missing @path",
        ),
        (
            lambda h: {**h, "Signature-Input": h["Signature-Input"].replace('alg="ed25519"', 'alg="rsa-pss-sha512"')},
            "bad_signature_input",
            "alg 'rsa-pss-sha512'",
        ),
        (
            lambda h: {
                **h,
                "Signature-Input": h["Signature-Input"].replace('keyid="', "keyid=").replace('";alg', ";alg"),
            },
            "bad_signature_input",
            "keyid missing or malformed",
        ),
        (
            lambda h: {**h, "Signature": h["Signature"].replace("sig1=", "sig2=")},
            "bad_signature",
            "no sig1 byte sequence",
        ),
        (lambda h: {**h, "Content-Type": "text/plain"}, "bad_signature", "does not verify"),
    ],
)
def test_refusals_name_their_cause(change: Any, reason: str, cause: str) -> None:
    key = Ed25519PrivateKey.generate()
    body = b'{"x":1}'
    h = sign_request("POST", BATCHES, body, key, "k1", content_type="application/json", created=1_800_000_000)
    with pytest.raises(SignatureRefused) as e:
        verify_request("POST", BATCHES, change(h), body, lambda k: key.public_key(), now=1_800_000_000)
    assert e.value.reason == reason and cause in e.value.message, e.value.message


def test_path_is_signed_as_sent_not_decoded() -> None:
    key = Ed25519PrivateKey.generate()
    h = sign_request("GET", "/api/v1/attachments/a%2Fb", b"", key, "k1", created=1_800_000_000)
    verify_request("GET", "/api/v1/attachments/a%2Fb", h, b"", lambda k: key.public_key(), now=1_800_000_000)
    with pytest.raises(SignatureRefused):
        verify_request("GET", "/api/v1/attachments/a/b", h, b"", lambda k: key.public_key(), now=1_800_000_000)


def test_the_hub_verifies_path_as_sent_percent_encoding_included(live_hub: Any) -> None:
    data = b"%PDF-1.7\n" + b"x" * 100
    sha = live_hub.post("/api/v1/attachments", data).json()["sha256"]
    target = f"/api/v1/attachments/%{ord(sha[0]):02X}{sha[1:]}"  # the same resource, one character escaped
    h = sign_request("GET", target, b"", live_hub.key, live_hub.key_id)
    conn = http.client.HTTPConnection("127.0.0.1", live_hub.port, timeout=30)  # requests would unescape it
    try:
        conn.request("GET", target, headers=h)
        r = conn.getresponse()
        status, answer = r.status, r.read()
    finally:
        conn.close()
    assert status == 200 and answer == data, answer[:200]
