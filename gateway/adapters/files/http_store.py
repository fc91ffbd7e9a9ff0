"""A legacy system's XML export served over HTTP(S): a 'folder' of one file.

The body is streamed with a size limit; content that did not change since the
last poll is recognised by its sha256 and not read again. Where the server
gives a validator (ETag, else Last-Modified), the poll asks with it
(If-None-Match / If-Modified-Since), and a 304 answer costs no download at all.
A server without validators is downloaded and hashed on every poll, as before.
"""

from __future__ import annotations

import io
import posixpath
import time
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import requests

from gateway.adapters.filenames import refusal
from gateway.adapters.files.store import Entry
from gateway.adapters.formats import FileUnreadable
from gateway.errors import RetriableError, SourceError


class _Body(io.RawIOBase):
    """A streamed response body as a readable file, refusing more than `limit` bytes."""

    def __init__(self, resp: requests.Response, limit: int) -> None:
        self.resp = resp
        self.limit = limit
        self.seen = 0
        self.chunks: Iterator[bytes] = resp.iter_content(chunk_size=1 << 16)
        self.buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self.buf:
            try:
                self.buf = next(self.chunks)
            except StopIteration:
                return 0
            except requests.RequestException as e:
                raise RetriableError(f"download of {self.resp.url} broke off: {e}") from e
            self.seen += len(self.buf)
            if self.seen > self.limit:
                raise FileUnreadable("file.too_large", f"下载内容超过大小上限 {self.limit} 字节")
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n

    def close(self) -> None:
        self.resp.close()
        super().close()


class HttpStore:
    can_move = False

    def __init__(self, url: str, timeout: float, max_bytes: int, ca_file: str | None = None) -> None:
        self.url = url
        self.label = url
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.session = requests.Session()
        if ca_file:
            self.session.verify = ca_file
        name = posixpath.basename(unquote(urlsplit(url).path)) or "export.xml"
        self.name = name if refusal(name) is None else "export.xml"
        self.known: list[Any] | None = None  # the ledger's "seen" entry of the export, if it carries a version
        self.held: requests.Response | None = None  # the listing's 200 answer, read by open()

    def recall(self, seen: dict[str, list[Any]]) -> None:
        s = seen.get(self.name)
        self.known = s if s and len(s) > 3 and s[3] else None

    def list(self) -> list[Entry]:
        # The listing is the download's start: the answer's validator names the content, and
        # open() reads the body held here. Without a validator from an earlier poll, a fresh
        # mtime makes the drop logic read and hash the body, and the hash decides what is new.
        headers = None
        if self.known is not None:
            kind, _, value = str(self.known[3]).partition(":")
            headers = {"If-None-Match": value} if kind == "etag" else {"If-Modified-Since": value}
        resp = self._get(headers)
        if resp.status_code == 304:
            resp.close()
            size, mtime, _, version = self.known[:4]  # type: ignore[index]
            return [Entry(self.name, size, mtime, version)]  # what the ledger identified: nothing to read
        self.held = resp
        return [Entry(self.name, -1, time.time(), _version(resp))]

    def _get(self, headers: dict[str, str] | None = None) -> requests.Response:
        try:
            resp = self.session.get(self.url, stream=True, timeout=self.timeout, headers=headers)
        except requests.RequestException as e:
            raise RetriableError(f"cannot fetch {self.url}: {e}") from e
        if resp.status_code >= 500 or resp.status_code == 429:
            resp.close()
            raise RetriableError(f"{self.url} answered HTTP {resp.status_code}")
        if resp.status_code not in (200, 304) or (resp.status_code == 304 and not headers):
            resp.close()
            raise SourceError(f"{self.url} answered HTTP {resp.status_code}; check the url setting")
        return resp

    def open(self, name: str) -> BinaryIO:
        resp, self.held = self.held, None
        if resp is None:
            resp = self._get()
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            resp.close()
            raise FileUnreadable("file.too_large", f"内容长度 {declared} 字节超过大小上限 {self.max_bytes}")
        return io.BufferedReader(_Body(resp, self.max_bytes), buffer_size=1 << 16)  # type: ignore[return-value]

    def move(self, name: str, folder: str) -> str:
        raise OSError("files served over HTTP cannot be moved")

    def close(self) -> None:
        if self.held is not None:
            self.held.close()
            self.held = None
        self.session.close()


def _version(resp: requests.Response) -> str:
    """The answer's validator, strong or weak ETag first (exact), else Last-Modified; "" without one."""
    if etag := resp.headers.get("ETag"):
        return f"etag:{etag}"
    if modified := resp.headers.get("Last-Modified"):
        return f"lm:{modified}"
    return ""
