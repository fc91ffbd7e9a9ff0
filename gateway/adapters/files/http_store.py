"""A legacy system's XML export served over HTTP(S): a 'folder' of one file.

The body is streamed with a size limit; content that did not change since the
last poll is recognised by its sha256 and not read again.
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

    def list(self) -> list[Entry]:
        # Size and time are unknown before downloading; a fresh mtime makes every poll
        # download and hash, and the hash decides whether anything is new.
        return [Entry(self.name, -1, time.time())]

    def open(self, name: str) -> BinaryIO:
        try:
            resp = self.session.get(self.url, stream=True, timeout=self.timeout)
        except requests.RequestException as e:
            raise RetriableError(f"cannot fetch {self.url}: {e}") from e
        if resp.status_code >= 500 or resp.status_code == 429:
            resp.close()
            raise RetriableError(f"{self.url} answered HTTP {resp.status_code}")
        if resp.status_code != 200:
            resp.close()
            raise SourceError(f"{self.url} answered HTTP {resp.status_code}; check the url setting")
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            resp.close()
            raise FileUnreadable("file.too_large", f"内容长度 {declared} 字节超过大小上限 {self.max_bytes}")
        return io.BufferedReader(_Body(resp, self.max_bytes), buffer_size=1 << 16)  # type: ignore[return-value]

    def move(self, name: str, folder: str) -> str:
        raise OSError("files served over HTTP cannot be moved")

    def close(self) -> None:
        self.session.close()
