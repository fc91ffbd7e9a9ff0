"""SSH host keys: verify against known_hosts, never trust on first use.

Trusting a key is an explicit admin action (`gateway sftp trust SOURCE`), which
fetches the key, shows its SHA256 fingerprint and writes it to known_hosts
only when confirmed.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from pathlib import Path
from typing import Any

import paramiko

from gateway.errors import RetriableError, SourceError


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style 'SHA256:...' fingerprint, as `ssh-keygen -lf` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def host_entry(host: str, port: int) -> str:
    """The known_hosts name for host:port (OpenSSH writes '[host]:port' for non-22 ports)."""
    return host if port == 22 else f"[{host}]:{port}"


def trust_hint(source: str) -> str:
    return f"if this is the right server, check the fingerprint with its admin and run: gateway --config FILE sftp trust {source}"


class RefuseUnknownHost(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, with an error that says what to do."""

    def __init__(self, source: str, known_hosts: Path) -> None:
        self.source = source
        self.known_hosts = known_hosts

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        raise SourceError(
            f"SFTP 服务器主机密钥未受信任，已拒绝连接。source {self.source}: SFTP host {hostname} presented an unknown {key.get_name()} host key "
            f"{fingerprint(key)}, which is not in {self.known_hosts}; refusing to connect. {trust_hint(self.source)}"
        )


def changed_key_error(source: str, host: str, known_hosts: Path, got: paramiko.PKey, expected: paramiko.PKey) -> SourceError:
    return SourceError(
        f"SFTP 服务器主机密钥已改变，已拒绝连接（可能是冒充的服务器）。source {source}: SFTP host {host} HOST KEY CHANGED: it presented {got.get_name()} {fingerprint(got)} "
        f"but {known_hosts} pins {expected.get_name()} {fingerprint(expected)}; refusing to connect (this may be an "
        f"impostor). If the server was re-keyed, confirm the new fingerprint with its admin and run: "
        f"gateway --config FILE sftp trust {source} --replace"
    )


def fetch_host_key(host: str, port: int, timeout: float = 15.0) -> paramiko.PKey:
    """Connect far enough to learn the server's host key (no authentication)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise RetriableError(f"cannot reach SFTP host {host}:{port}: {e}") from e
    t = paramiko.Transport(sock)
    try:
        t.start_client(timeout=timeout)
        return t.get_remote_server_key()
    except paramiko.SSHException as e:
        raise SourceError(f"SSH handshake with {host}:{port} failed: {e}") from e
    finally:
        t.close()


def pinned_keys(known_hosts: Path, host: str, port: int) -> dict[str, paramiko.PKey]:
    hk = paramiko.HostKeys()
    if known_hosts.exists():
        hk.load(str(known_hosts))
    found = hk.lookup(host_entry(host, port))
    return dict(found) if found else {}


def pin_host_key(known_hosts: Path, host: str, port: int, key: paramiko.PKey, replace: bool = False) -> str:
    """Write `key` for host:port to known_hosts; returns what was done ('added', 'present', 'replaced').

    A different key of the same type already pinned is only replaced with replace=True.
    """
    name = host_entry(host, port)
    current = pinned_keys(known_hosts, host, port)
    same = current.get(key.get_name())
    if same is not None and same.asbytes() == key.asbytes():
        return "present"
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    if current and (same is not None or replace):
        if not replace:
            raise SourceError(f"{known_hosts} already pins a different {key.get_name()} key for {name}; use --replace")
        hk = paramiko.HostKeys(str(known_hosts))
        while True:  # drop every old key of this host (paramiko deletes one entry per call)
            try:
                del hk[name]
            except KeyError:
                break
        hk.add(name, key.get_name(), key)
        hk.save(str(known_hosts))
        return "replaced"
    with open(known_hosts, "a", encoding="utf-8") as f:
        f.write(f"{name} {key.get_name()} {key.get_base64()}\n")
    known_hosts.chmod(0o644)
    return "added"
