"""The suite seam: ed25519 behind it as before, sm2-sm3 beside it, the suite named in every signature."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from gateway.cli.main import cli
from gateway.protocol.keys import public_key_text, read_private_key, read_public_key
from gateway.protocol.receipts import ReceiptInvalid, sign_receipt, verify_receipt
from gateway.protocol.signing import SignatureRefused, sign_request, verify_request
from gateway.protocol.suites import ED25519, SUITES, UnknownSuite, suite, suite_of
from tests.fixtures.hub import batch_body, record, sample

NOW = 1_800_000_000
BODY = b'{"x":1}'
RECEIPT = {
    "protocol": "1",
    "batch_id": "b",
    "department": "d",
    "hub_time": "t",
    "log_seq": 1,
    "log_head": "h",
    "results": [],
}
sm2_available = pytest.mark.skipif(not __import__("importlib").util.find_spec("tongsuopy"), reason="tongsuopy missing")


@pytest.mark.parametrize(
    "name", [n for n in SUITES if n == "ed25519" or __import__("importlib").util.find_spec("tongsuopy")]
)
def test_every_suite_signs_verifies_and_writes_its_keys(name: str, tmp_path: Path) -> None:
    s = suite(name)
    key = s.generate()
    sig = s.sign(key, BODY)
    assert s.verify(s.public_key(key), sig, BODY) and not s.verify(s.public_key(key), sig, BODY + b" ")
    assert suite_of(key) is s and suite_of(s.public_key(key)) is s
    assert s.public_from_text(s.public_text(s.public_key(key))).public_bytes  # round trip through the text form
    assert s.private_from_pem(s.private_pem(key)) is not None
    other = next(o for o in SUITES.values() if o is not s)
    assert other.private_from_pem(s.private_pem(key)) is None  # a key is one suite's only


@pytest.mark.parametrize(
    "name", [n for n in SUITES if n == "ed25519" or __import__("importlib").util.find_spec("tongsuopy")]
)
def test_a_request_names_its_suite_and_verifies_only_as_that_suite(name: str) -> None:
    key = suite(name).generate()
    pub = suite(name).public_key(key)
    h = sign_request("POST", "/api/v1/batches", BODY, key, "k1", created=NOW, content_type="application/json")
    assert f';alg="{name}"' in h["Signature-Input"]
    v = verify_request("POST", "/api/v1/batches", h, BODY, lambda k: pub, now=NOW)
    assert v.suite == name
    with pytest.raises(SignatureRefused, match="not one of"):  # a hub that does not accept this suite
        verify_request(
            "POST", "/api/v1/batches", h, BODY, lambda k: pub, now=NOW, suites=tuple(n for n in SUITES if n != name)
        )
    body, sig = sign_receipt(RECEIPT, key, "hub-1")
    assert verify_receipt(body, sig, pub)["hub_key_id"] == "hub-1"
    with pytest.raises(ReceiptInvalid):
        verify_receipt(body.replace(b'"log_seq":1', b'"log_seq":2'), sig, pub)


@sm2_available
def test_alg_must_be_the_keys_suite() -> None:
    sm2 = suite("sm2").generate()
    h = sign_request("POST", "/api/v1/batches", BODY, sm2, "k1", created=NOW)
    ed = ED25519.generate().public_key()
    with pytest.raises(SignatureRefused, match="is not key k1's suite 'ed25519'"):
        verify_request("POST", "/api/v1/batches", h, BODY, lambda k: ed, now=NOW)


def test_an_unknown_suite_is_named_with_a_hint() -> None:
    with pytest.raises(UnknownSuite, match="did you mean 'ed25519'"):
        suite("ed2519")


@sm2_available
def test_sm3_digest_is_the_standards(tmp_path: Path) -> None:
    assert suite("sm2-sm3").digest(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


@sm2_available
@pytest.mark.parametrize("option, prefix", [([], ""), (["--suite", "sm2"], "sm2:")])
def test_keys_new_makes_a_key_of_the_chosen_suite(tmp_path: Path, option: list[str], prefix: str) -> None:
    r = CliRunner().invoke(cli, ["keys", "new", str(tmp_path / "k.key"), *option])
    assert r.exit_code == 0, r.output
    key = read_private_key(tmp_path / "k.key")
    pub_line = (tmp_path / "k.pub").read_text().strip()
    assert pub_line.startswith(prefix) and (prefix or ":" not in pub_line)
    assert public_key_text(read_public_key(tmp_path / "k.pub")) == pub_line == public_key_text(key.public_key())
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    bad = CliRunner().invoke(cli, ["keys", "new", str(tmp_path / "x.key"), "--suite", "sm9"])
    assert bad.exit_code != 0 and "unknown suite 'sm9'" in bad.output


@sm2_available
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")
def test_an_sm2_request_signature_verifies_with_openssl(tmp_path: Path) -> None:
    from tongsuopy.crypto import serialization

    key = suite("sm2").generate()
    (tmp_path / "pub.pem").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    base = b'"@method": POST\n"@signature-params": ("@method")'
    (tmp_path / "msg").write_bytes(base)
    (tmp_path / "sig").write_bytes(suite("sm2").sign(key, base))
    r = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            "distid:1234567812345678",
            "-in",
            "msg",
            "-sigfile",
            "sig",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "Signature Verified Successfully" in r.stdout, r.stdout + r.stderr


def sm2_algorithm() -> Any:
    """An SM2 algorithm for http-message-signatures (it has none): the independent RFC 9421 side of sm2-sm3."""
    from http_message_signatures import HTTPSignatureAlgorithm, InvalidSignature

    sm2 = suite("sm2-sm3")

    class SM2_SM3(HTTPSignatureAlgorithm):
        algorithm_id = "sm2-sm3"

        def __init__(self, public_key: Any = None, private_key: Any = None) -> None:
            self.public_key, self.private_key = public_key, private_key

        def sign(self, message: bytes) -> bytes:
            return sm2.sign(self.private_key, message)

        def verify(self, signature: bytes, message: bytes) -> None:
            if not sm2.verify(self.public_key, signature, message):
                raise InvalidSignature("SM2 signature does not verify")

    return SM2_SM3


@sm2_available
def test_the_hub_accepts_an_sm2_key_and_the_library_verifies_its_requests(live_hub: Any) -> None:
    from http_message_signatures import HTTPMessageSigner, HTTPMessageVerifier, MappingKeyResolver

    from gateway.hub import registry

    key = suite("sm2").generate()
    with live_hub.engine.begin() as conn:
        registry.add_key(conn, live_hub.department, "dept001-sm2", public_key_text(key.public_key()))
    body = batch_body([record("material", sample("material", 1))])
    h = sign_request("POST", "/api/v1/batches", body, key, "dept001-sm2", content_type="application/json")
    r = live_hub.session.post(live_hub.url + "/api/v1/batches", data=body, headers=h, timeout=30)
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "accepted", r.text

    components = ("@method", "@path", "content-digest", "content-type", "protocol-version")
    resolver = MappingKeyResolver(public_keys={"dept001-sm2": key.public_key()}, private_keys={"dept001-sm2": key})
    msg = requests.Request("POST", live_hub.url + "/api/v1/batches", data=body, headers=h).prepare()
    HTTPMessageVerifier(signature_algorithm=sm2_algorithm(), key_resolver=resolver).verify(
        msg, require_components=components, body=body
    )

    body2 = batch_body([record("material", sample("material", 2))])
    prep = requests.Request(
        "POST",
        live_hub.url + "/api/v1/batches",
        data=body2,
        headers={"Content-Type": "application/json", "Protocol-Version": "1"},
    ).prepare()
    HTTPMessageSigner(signature_algorithm=sm2_algorithm(), key_resolver=resolver).sign(
        prep,
        key_id="dept001-sm2",
        label="sig1",
        nonce=secrets.token_hex(16),
        covered_component_ids=components,
        body=body2,
    )
    r2 = live_hub.session.send(prep, timeout=30)
    assert r2.status_code == 200 and r2.json()["results"][0]["status"] == "accepted", r2.text


@sm2_available
def test_a_gateway_with_an_sm2_key_pushes_beside_an_ed25519_one(gateway_dir: Any, live_hub: Any) -> None:
    """A migration: the department's Ed25519 key and its new SM2 key are both accepted by one hub."""
    from gateway.hub import registry
    from gateway.protocol.keys import write_private_key
    from gateway.push.client import push_pending
    from tests.fixtures.push import Edit, enqueue, material, mkey

    config = gateway_dir.for_hub(live_hub)
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(1), 1, material(1))])
    assert push_pending(config, engine, give_up_after=0).accepted == 1  # Ed25519, as before

    key = suite("sm2").generate()
    with live_hub.engine.begin() as conn:
        registry.add_key(conn, live_hub.department, "dept001-sm2", public_key_text(key.public_key()))
    write_private_key(key, gateway_dir.root / "keys" / "gateway.key")
    config = gateway_dir.write_config(live_hub.url, key_id="dept001-sm2")
    enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(2, 5)])
    assert push_pending(config, engine, give_up_after=0).accepted == 3
    with live_hub.engine.connect() as conn:
        kinds = conn.exec_driver_sql("select key_id, count(*) from receipt_log group by key_id order by key_id").all()
    assert dict(kinds) == {"dept001-1": 1, "dept001-sm2": 1}


@sm2_available
def test_gateway_and_hub_with_their_own_signer_ids_push_and_verify(gateway_dir: Any, hub_factory: Any) -> None:
    """keys.sm2_signer_id and hub.sm2_signer_id: each side signs with its ID, the other verifies with the ID
    its registered key line names; the wrong ID is refused."""
    from gateway.cli.main import cli as gateway_cli
    from gateway.config import load_gateway_config
    from gateway.hub import registry
    from gateway.protocol.keys import new_key_pair
    from gateway.push.client import push_pending
    from tests.fixtures.push import Edit, enqueue, material, mkey

    hub = hub_factory(suite="sm2-sm3")
    hub.stop()
    new_key_pair(hub.dir / "keys" / "hub.key", hub.dir / "keys" / "hub.pub", "sm2-sm3", "hub@town")
    cfg = hub.config_path.read_text(encoding="utf-8").replace(
        'suite = "sm2-sm3"', 'suite = "sm2-sm3"\nsm2_signer_id = "hub@town"'
    )
    hub.config_path.write_text(cfg, encoding="utf-8")
    hub.start()
    assert requests.get(hub.url + "/api/v1/hub", timeout=10).json()["hub_public_key"].endswith(";id=hub@town")

    config = gateway_dir.for_hub(hub)
    r = CliRunner().invoke(
        gateway_cli,
        [
            "--config",
            str(config.file),
            "keys",
            "new",
            str(gateway_dir.root / "keys" / "sm2.key"),
            "--sm2-signer-id",
            "dept001@yjj",
        ],
    )
    assert r.exit_code == 0 and "suite sm2-sm3" in r.output, r.output  # the suite from keys.suite (the key's)
    line = (gateway_dir.root / "keys" / "sm2.pub").read_text().strip()
    with hub.engine.begin() as conn:
        registry.add_key(conn, hub.department, "dept001-id", line)
    text = config.file.read_text(encoding="utf-8").replace("gateway.key", "sm2.key")
    text = text.replace(f'key_id = "{hub.key_id}"', 'key_id = "dept001-id"\nsm2_signer_id = "dept001@yjj"')
    config.file.write_text(text, encoding="utf-8")
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(1), 1, material(1))])
    assert push_pending(load_gateway_config(config.file), engine, give_up_after=0).accepted == 1
    res = CliRunner().invoke(gateway_cli, ["--config", str(config.file), "receipts", "verify"])
    assert res.exit_code == 0, res.output

    # Signed with the default ID, the registered key's Z does not match: refused as a bad signature.
    config.file.write_text(text.replace('sm2_signer_id = "dept001@yjj"\n', ""), encoding="utf-8")
    enqueue(engine, [Edit(mkey(2), 1, material(2))])
    assert push_pending(load_gateway_config(config.file), engine, give_up_after=0).accepted == 0
    with hub.engine.connect() as conn:
        last = conn.exec_driver_sql("select status, key_id from receipt_log order by seq desc limit 1").one()
    assert tuple(last) == ("bad_signature", "dept001-id")


@sm2_available
def test_a_hub_that_accepts_only_sm2_refuses_ed25519_requests_and_keys(hub_factory: Any, tmp_path: Path) -> None:
    """hub.accept_suites after a migration: an Ed25519 request is refused naming the cause, and its key cannot
    be registered; the department list shows each key's suite."""
    from gateway.hub import registry
    from gateway.protocol.keys import new_key_pair

    hub = hub_factory(suite="sm2-sm3")
    hub.stop()
    cfg = hub.config_path.read_text(encoding="utf-8").replace(
        'suite = "sm2-sm3"', 'suite = "sm2-sm3"\naccept_suites = ["sm2-sm3"]'
    )
    hub.config_path.write_text(cfg, encoding="utf-8")
    hub.start()
    ed = ED25519.generate()
    with hub.engine.begin() as conn:  # registered behind the CLI's back
        registry.add_key(conn, hub.department, "dept001-ed", public_key_text(ed.public_key()))
    body = batch_body([record("material", sample("material", 1))])
    r = hub.post("/api/v1/batches", body, key=ed, key_id="dept001-ed")
    assert r.status_code == 401 and r.json()["error"] == "bad_signature_input", r.text
    assert "alg 'ed25519' is not one of sm2-sm3" in r.json()["message"]
    assert hub.post("/api/v1/batches", body).status_code == 200  # the department's SM2 key

    new_key_pair(tmp_path / "ed.key", tmp_path / "ed.pub")
    base = ["hub", "--config", str(hub.config_path), "department"]
    refused = CliRunner().invoke(cli, [*base, "key-add", hub.department, "dept001-ed2", str(tmp_path / "ed.pub")])
    assert refused.exit_code == 2 and "is an ed25519 key, but hub.accept_suites is ['sm2-sm3']" in refused.output
    listing = CliRunner().invoke(cli, [*base, "list"]).output
    assert "key dept001-1\tactive\tsm2-sm3\tsm2:" in listing and "key dept001-ed\tactive\ted25519\t" in listing
