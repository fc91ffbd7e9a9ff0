"""`gateway run` with web.tls_cert: the admin UI and local API over HTTPS."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.errors import FatalError
from gateway.service.runtime import GatewayService
from tests.fixtures.service import TOKEN


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    c, k = folder / "web.pem", folder / "web.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return c, k


def test_local_api_and_ui_over_tls(service_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = _self_signed(tmp_path)
    cfg = service_env.config()
    cfg.web.tls_cert, cfg.web.tls_key = cert, key
    svc = GatewayService(cfg, pg_listen=False, run_at_start=False).start()
    try:
        assert svc.scheme == "https"
        base = f"https://{svc.listen}"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{base}/healthz", timeout=10)  # not trusted without the certificate
        assert requests.get(f"{base}/healthz", timeout=10, verify=str(cert)).json()["ok"] is True
        service_env.set_material("WZ-0001", "折叠床（TLS）")
        r = requests.post(f"{base}/api/local/push", json={"source": "materials", "key": "WZ-0001"},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=20, verify=str(cert))
        assert r.status_code == 200 and r.json()["status"] == "delivered"
        login = requests.get(f"{base}/accounts/login", timeout=10, verify=str(cert))
        assert login.status_code == 200 and "登录" in login.text
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://{svc.listen}/healthz", timeout=5)  # plain HTTP is not served
    finally:
        svc.stop()


def test_unusable_certificate_is_a_clear_error(service_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bad.pem").write_text("not a certificate")
    cfg = service_env.config()
    cfg.web.tls_cert = cfg.web.tls_key = tmp_path / "bad.pem"
    svc = GatewayService(cfg, pg_listen=False, run_at_start=False)
    try:
        with pytest.raises(FatalError, match="tls_cert"):
            svc.start()
    finally:
        svc.stop()
