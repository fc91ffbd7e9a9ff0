"""The `sftp` adapter: a remote drop folder read over SFTP (paramiko).

Host keys are checked against the configured known_hosts file; an unknown or
changed key stops the source with a SourceError naming the host, key type and
fingerprint. Symlinks and other non-regular entries are ignored.
"""

from __future__ import annotations

import io
import posixpath
import stat
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import paramiko

from gateway.adapters.base import Setting
from gateway.adapters.files.drop import FileDropAdapter
from gateway.adapters.files.hostkeys import RefuseUnknownHost, changed_key_error, host_entry
from gateway.adapters.files.settings import DROP, PARSING
from gateway.adapters.files.store import Entry, free_name
from gateway.errors import RetriableError, SourceError

TRANSPORT = (
    Setting("host", str, required=True, help="SFTP server host name or address"),
    Setting("port", int, default=22, help="SFTP server port"),
    Setting("username", str, required=True, help="Login name"),
    Setting("password", str, secret=True, help="Password (give as {env = ...} or {credential = ...})"),
    Setting("key_file", str, path=True, help="Private key file for key authentication"),
    Setting("key_passphrase", str, secret=True, help="Passphrase of key_file, if any"),
    Setting("known_hosts", str, default="~/.ssh/known_hosts", path=True, help="known_hosts file with the server's pinned host key"),
    Setting("path", str, default=".", help="Remote drop folder"),
    Setting("timeout", (int, float), default=30, help="Connect and read timeout, seconds"),
)


def _listdir_attr(sftp: paramiko.SFTPClient, path: str) -> list[paramiko.SFTPAttributes]:
    """paramiko's listdir_attr, except that a name which is not UTF-8 (a GBK name on an old
    Windows server) no longer fails the whole listing: it arrives surrogate-escaped and is
    refused on its own as filename.undecodable."""
    from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR, SFTPError

    t, msg = sftp._request(CMD_OPENDIR, path)
    if t != CMD_HANDLE:
        raise SFTPError("Expected handle")
    handle = msg.get_binary()
    out = []
    try:
        while True:
            try:
                t, msg = sftp._request(CMD_READDIR, handle)
            except EOFError:
                break
            if t != CMD_NAME:
                raise SFTPError("Expected name response")
            for _ in range(msg.get_int()):
                name = msg.get_string().decode("utf-8", "surrogateescape")
                longname = msg.get_string().decode("utf-8", "replace")
                attr = paramiko.SFTPAttributes._from_msg(msg, name, longname)
                if name not in (".", ".."):
                    out.append(attr)
    finally:
        sftp._request(CMD_CLOSE, handle)
    return out


class _RemoteFile(io.RawIOBase):
    """A remote file whose transport failures are retriable, not a verdict on the file."""

    def __init__(self, f: paramiko.SFTPFile, where: str) -> None:
        self.f = f
        self.where = where

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self.f.read(size if size >= 0 else None)
        except (OSError, paramiko.SSHException) as e:
            raise RetriableError(f"reading {self.where} broke off: {e}") from e

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self.f.close()
        except (OSError, paramiko.SSHException):
            pass  # the connection is gone; the error that matters was raised by read()
        super().close()


class SftpStore:
    can_move = True

    def __init__(self, source: str, settings: dict[str, Any]) -> None:
        host, port = settings["host"], int(settings["port"])
        self.root = settings["path"] or "."
        self.label = f"sftp://{host}:{port}/{self.root.lstrip('/')}"
        known_hosts = Path(settings["known_hosts"]).expanduser()
        client = paramiko.SSHClient()
        if known_hosts.exists():
            client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(RefuseUnknownHost(source, known_hosts))
        try:
            client.connect(
                host, port=port, username=settings["username"], password=settings.get("password"),
                key_filename=str(Path(settings["key_file"]).expanduser()) if settings.get("key_file") else None,
                passphrase=settings.get("key_passphrase"), timeout=float(settings["timeout"]),
                banner_timeout=float(settings["timeout"]), auth_timeout=float(settings["timeout"]),
                allow_agent=False, look_for_keys=False,
            )
            self.sftp = client.open_sftp()
            self.sftp.get_channel().settimeout(float(settings["timeout"]))
        except paramiko.BadHostKeyException as e:
            client.close()
            raise changed_key_error(source, host_entry(host, port), known_hosts, e.key, e.expected_key) from None
        except paramiko.AuthenticationException as e:
            client.close()
            raise SourceError(f"source {source}: SFTP login as {settings['username']} at {host}:{port} failed: {e}") from None
        except SourceError:
            client.close()
            raise
        except (OSError, paramiko.SSHException) as e:
            client.close()
            raise RetriableError(f"source {source}: cannot connect to SFTP {host}:{port}: {e}") from e
        self.client = client

    def _path(self, name: str, folder: str | None = None) -> str:
        base = self.root if folder is None else (folder if folder.startswith("/") else posixpath.join(self.root, folder))
        return posixpath.join(base, name)

    def list(self) -> list[Entry]:
        try:
            attrs = _listdir_attr(self.sftp, self.root)
        except FileNotFoundError:
            raise SourceError(f"remote drop folder {self.label} does not exist") from None
        except PermissionError:
            raise SourceError(f"no permission to list remote drop folder {self.label}") from None
        except (OSError, paramiko.SSHException) as e:
            raise RetriableError(f"listing {self.label} failed: {e}") from e
        return [
            Entry(a.filename, int(a.st_size or 0), float(a.st_mtime or 0))
            for a in attrs
            if a.st_mode is not None and stat.S_ISREG(a.st_mode)
        ]

    def open(self, name: str) -> BinaryIO:
        try:
            f = self.sftp.open(self._path(name), "rb")
            f.prefetch()
        except (FileNotFoundError, PermissionError):
            raise
        except (OSError, paramiko.SSHException) as e:
            raise RetriableError(f"opening {self.label}/{name} failed: {e}") from e
        return _RemoteFile(f, f"{self.label}/{name}")  # type: ignore[return-value]

    def _exists(self, folder: str, name: str) -> bool:
        try:
            self.sftp.stat(posixpath.join(folder, name))
            return True
        except FileNotFoundError:
            return False

    def move(self, name: str, folder: str) -> str:
        target = folder if folder.startswith("/") else posixpath.join(self.root, folder)
        try:
            self.sftp.stat(target)
        except FileNotFoundError:
            self.sftp.mkdir(target)
        final = free_name(self._exists, target, name)
        self.sftp.rename(self._path(name), posixpath.join(target, final))
        return posixpath.join(target, final)

    def close(self) -> None:
        self.client.close()


class SftpAdapter(FileDropAdapter):
    name = "sftp"
    settings_spec: ClassVar[tuple[Setting, ...]] = TRANSPORT + DROP + PARSING

    def open_store(self) -> SftpStore:
        if not self.settings.get("password") and not self.settings.get("key_file"):
            raise SourceError(f"source {self.source}: give password or key_file for SFTP login")
        return SftpStore(self.source, self.settings)
