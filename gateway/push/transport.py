"""The HTTP side of pushing: one requests.Session to the hub, signed requests, answers sorted by recovery.

Each answer becomes exactly one of:
- a verified receipt (signature checked with the hub's public key);
- HubUnavailable (retriable: connection refused/reset, timeout, 408, 429, 5xx, a 401 `replay`; Retry-After kept);
- ReceiptUnverified (retriable: a 2xx whose receipt does not verify, or is not about this batch);
- BatchTooLarge (413: the hub did not take the batch; send fewer records at a time);
- BatchConflict (409 batch_id_conflict: the rows go back to pending and leave in a new batch);
- BatchRefused (fatal for the batch: 400/401/403/409/422 ... a person has to act).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn
from urllib.parse import urlsplit

import requests
import urllib3.exceptions as u3
from requests.adapters import TimeoutSauce
from requests.cookies import extract_cookies_to_jar
from requests.utils import get_environ_proxies
from urllib3.connectionpool import HTTPConnectionPool

from gateway.config import GatewayConfig
from gateway.errors import FatalError, RetriableError
from gateway.logs import log
from gateway.protocol.batch import COMPACT_VERSION, VERSION_HEADER
from gateway.protocol.keys import read_private_key, read_public_key
from gateway.protocol.receipts import RECEIPT_HEADER, ReceiptInvalid, expanded, verify_receipt
from gateway.protocol.signing import sign_request
from gateway.protocol.strictjson import loads_strict
from gateway.protocol.suites import suite_of
from gateway.push.backoff import parse_retry_after
from gateway.push.batching import Batch
from gateway.push.receipts import ReceiptUnverified

LOG = logging.getLogger(__name__)

BATCHES_PATH = "/api/v1/batches"
RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class HubUnavailable(RetriableError):
    def __init__(self, message: str, status: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after)
        self.status = status


class BatchRefused(FatalError):
    """The hub refused the whole batch (signature, key, protocol); retrying unchanged will not help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class BatchTooLarge(FatalError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.status = 413


class BatchConflict(FatalError):
    """409 batch_id_conflict: the hub holds different content under this batch id; re-batch the rows."""

    status = 409


@dataclass(frozen=True)
class VerifiedReceipt:
    body: bytes  # exactly as received and signed
    signature: str  # Receipt-Signature header value as received
    doc: dict[str, Any]


class _Answer(NamedTuple):
    """A 2xx answer read straight off urllib3: what _answer looks at, without a requests.Response."""

    status_code: int
    headers: Any  # urllib3 HTTPHeaderDict (case-insensitive, as requests' headers)
    content: bytes

    def close(self) -> None:
        pass


def _excerpt(resp: requests.Response) -> str:
    try:
        return resp.text[:500]
    except Exception:  # an undecodable body says nothing useful anyway
        return ""


def _error_code(resp: requests.Response) -> str | None:
    try:
        doc = loads_strict(resp.content)  # an answer whose code is ambiguous has none (DuplicateMember is a ValueError)
    except ValueError:
        return None
    return doc.get("error") if isinstance(doc, dict) else None


def _raise_as_requests(e: Exception) -> NoReturn:
    """Raise what HTTPAdapter.send raises for this urllib3 error (HubTransport.send sorts those)."""
    exc = requests.exceptions
    if isinstance(e, u3.MaxRetryError):
        reason = e.reason
        if isinstance(reason, u3.ConnectTimeoutError) and not isinstance(reason, u3.NewConnectionError):
            raise exc.ConnectTimeout(e) from None
        if isinstance(reason, u3.ResponseError):
            raise exc.RetryError(e) from None
        if isinstance(reason, u3.ProxyError):
            raise exc.ProxyError(e) from None
        if isinstance(reason, u3.SSLError):
            raise exc.SSLError(e) from None
        raise exc.ConnectionError(e) from None
    if isinstance(e, u3.ProtocolError | OSError | u3.ClosedPoolError):
        raise exc.ConnectionError(e) from None
    if isinstance(e, u3.ProxyError):
        raise exc.ProxyError(e) from None
    if isinstance(e, u3.SSLError):
        raise exc.SSLError(e) from None
    if isinstance(e, u3.ReadTimeoutError):
        raise exc.ReadTimeout(e) from None
    if isinstance(e, u3.InvalidHeader):
        raise exc.InvalidHeader(e) from None
    raise e


def _read_all(raw: Any) -> bytes:
    """The whole body, decoded (gzip ...), with the errors Response.content raises for a broken one."""
    exc = requests.exceptions
    try:
        return bytes(raw.read(decode_content=True))
    except u3.ProtocolError as e:
        raise exc.ChunkedEncodingError(e) from None
    except u3.DecodeError as e:
        raise exc.ContentDecodingError(e) from None
    except u3.ReadTimeoutError as e:
        raise exc.ConnectionError(e) from None
    except u3.SSLError as e:
        raise exc.SSLError(e) from None
    finally:
        raw.release_conn()


class HubTransport:
    """A session to the hub's batch endpoint with this gateway's signing key and the hub's receipt key."""

    # The version this gateway speaks: 1.1 asks for compact receipts (a 1.0 hub answers in full, which is
    # read as before). "1" here makes it a 1.0 client (the equivalence test compares the two).
    protocol = COMPACT_VERSION

    def __init__(self, config: GatewayConfig) -> None:
        hub = config.hub
        if not hub.url:
            raise FatalError("hub.url is not set; nothing to push to")
        if hub.hub_key is None or not hub.hub_key.is_file():
            raise FatalError(
                f"hub.hub_key {hub.hub_key}: the hub's public key is needed to verify receipts; "
                "without it no record can be marked delivered (ask the hub operator for it)"
            )
        if config.signing_key is None or not config.signing_key.is_file():
            raise FatalError(f"keys.signing_key {config.signing_key}: signing key not found (gateway keys new ...)")
        self.url = hub.url + BATCHES_PATH
        self.path = urlsplit(self.url).path
        self.key = read_private_key(config.signing_key, config.sm2_signer_id, config.at_rest.open)
        self.key_id = config.key_id
        self.hub_public_key = read_public_key(hub.hub_key)
        self.department = config.department_code
        self.timeout = hub.timeout
        self.session = requests.Session()
        # The environment (proxies, no_proxy, a CA bundle) is read once, here, instead of by requests
        # on every request (trust_env): that re-read was a tenth of the client's CPU per local edit.
        # A proxy from $HTTPS_PROXY/$HTTP_PROXY is used unless $NO_PROXY exempts the hub, as before.
        self.session.trust_env = False
        self.session.proxies = dict(get_environ_proxies(self.url))
        # TLS verification stays on; a private CA is added, never verification turned off.
        # Passed with every request, not only set on the session: requests would let
        # $REQUESTS_CA_BUNDLE / $CURL_CA_BUNDLE override a session-level CA (psf/requests#3829).
        # Without a configured CA those variables still name the bundle to trust, as requests does.
        env_ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self.verify: str | bool = str(hub.ca_file) if hub.ca_file else (env_ca or True)
        self.session.verify = self.verify
        if hub.client_cert:
            self.session.cert = (str(hub.client_cert), str(hub.client_key)) if hub.client_key else str(hub.client_cert)
        self.session.headers.update({"Content-Type": "application/json", VERSION_HEADER: self.protocol})
        # The POST as Session.request would prepare it, less the body and signature: prepared once,
        # copied per batch (merging settings and parsing the URL per call cost more than the copy).
        self._post = self.session.prepare_request(requests.Request("POST", self.url))
        # The batch POST goes to urllib3 directly, on the connection pool requests itself would pick for
        # this URL with these settings (proxy, CA bundle, client certificate): requests' per-call work
        # (choosing the pool, wrapping the answer, cookie jars) cost about a third of the transport's CPU.
        self._adapter = self.session.get_adapter(self.url)
        self._headers = dict(self._post.headers)
        self._timeout = TimeoutSauce(connect=self.timeout, read=self.timeout)
        self._pool: tuple[HTTPConnectionPool, str] | None = None  # (pool, URL to ask it for), from the first send

    def close(self) -> None:
        self.session.close()
        self._pool = None  # closed with the session; a later send gets a new one, as requests would

    def signed_get(self, hub_url: str, target: str, what: str) -> requests.Response:
        """GET `target` (a path below `hub_url`, with its query), signed as every request of this gateway,
        on this session (TLS, CA, client certificate, proxies). A 200 answer, or RetriableError naming `what`."""
        url = hub_url + target
        parts = urlsplit(url)
        try:
            headers = sign_request("GET", f"{parts.path}?{parts.query}" if parts.query else parts.path, b"",
                                   self.key, self.key_id)
            resp = self.session.get(url, headers=headers, timeout=self.timeout, verify=self.verify)
        except requests.RequestException as e:
            raise RetriableError(f"中心不可达 / cannot ask the hub for {what}: {e}") from None
        if resp.status_code != 200:
            raise RetriableError(f"中心答复 {resp.status_code} / hub answered {resp.status_code}: {resp.text[:300]}")
        return resp

    def send(self, batch: Batch) -> VerifiedReceipt:
        """POST one batch; return its verified receipt or raise one of the errors above."""
        # Protocol 1.1: a compact receipt (accepted records as a Merkle root); a 1.0 hub answers in full.
        headers = sign_request("POST", self.path, batch.body, self.key, self.key_id, content_type="application/json",
                               protocol_version=self.protocol)
        try:
            resp = self._post_batch(batch.body, headers)
        except requests.Timeout as e:
            raise HubUnavailable(f"hub did not answer within {self.timeout}s: {e}", "timeout") from None
        except requests.exceptions.SSLError as e:
            # A certificate problem does not fix itself quickly, but it may be a
            # half-open connection through a middlebox: retried, with backoff.
            raise HubUnavailable(f"TLS error talking to the hub: {e}", "tls") from None
        except requests.ConnectionError as e:
            raise HubUnavailable(f"cannot reach the hub: {e}", "connection") from None
        except requests.RequestException as e:  # a response cut short, a broken encoding
            raise HubUnavailable(f"broken answer from the hub: {e}", "broken") from None
        try:
            return self._answer(batch, resp)
        finally:
            resp.close()

    def _prepared(self, body: bytes, headers: dict[str, str]) -> requests.PreparedRequest:
        prep = self._post.copy()
        prep.headers.update(headers)
        prep.headers["Content-Length"] = str(len(body))
        prep.body = body
        return prep

    def _post_batch(self, body: bytes, headers: dict[str, str]) -> requests.Response | _Answer:
        """session.post(url, data=body, headers=headers, ...): the same request, the same errors.

        A 2xx answer without cookies (the hub's receipt) is read straight from
        urllib3; any other answer continues as Session.send would (cookies into
        the session's jar, redirects followed, the body read) and is returned as
        a requests.Response.
        """
        session = self.session
        if len(session.cookies):
            # The hub set a cookie: let requests merge the jar into the request as it does.
            return session.post(self.url, data=body, headers=headers, timeout=self.timeout, verify=self.verify)
        adapter = self._adapter
        if self._pool is None:
            prep = self._prepared(body, headers)
            try:
                pool = adapter.get_connection_with_tls_context(prep, self.verify, proxies=session.proxies, cert=session.cert)
            except u3.LocationValueError as e:
                raise requests.exceptions.InvalidURL(e, request=prep) from None
            self._pool = (pool, adapter.request_url(prep, session.proxies))
        pool, url = self._pool
        adapter.cert_verify(pool, self.url, self.verify, session.cert)  # as requests does per request: a stat or two
        sent = dict(self._headers)
        sent.update(headers)
        sent["Content-Length"] = str(len(body))
        try:
            raw = pool.urlopen(
                method="POST", url=url, body=body, headers=sent, redirect=False, assert_same_host=False,
                preload_content=False, decode_content=False, retries=adapter.max_retries, timeout=self._timeout,
                chunked=False,
            )
        except Exception as e:  # noqa: BLE001 - sorted exactly as HTTPAdapter.send sorts them
            _raise_as_requests(e)
        if 200 <= raw.status < 300 and "set-cookie" not in raw.headers and "set-cookie2" not in raw.headers:
            return _Answer(raw.status, raw.headers, _read_all(raw))
        return self._as_requests_response(self._prepared(body, headers), raw)

    def _as_requests_response(self, prep: requests.PreparedRequest, raw: Any) -> requests.Response:
        """What Session.send does with the adapter's answer: cookies kept, redirects followed, body read."""
        session = self.session
        resp = self._adapter.build_response(prep, raw)
        extract_cookies_to_jar(session.cookies, prep, raw)
        history = list(session.resolve_redirects(
            resp, prep, stream=False, timeout=self.timeout, verify=self.verify, cert=session.cert, proxies=session.proxies,
        ))
        if history:
            history.insert(0, resp)
            resp = history.pop()
            resp.history = history
        resp.content  # noqa: B018 - read now, as stream=False does (its errors are the transport's)
        return resp

    def _answer(self, batch: Batch, resp: requests.Response) -> VerifiedReceipt:
        code = resp.status_code
        if code in RETRIABLE_STATUSES:
            ra = parse_retry_after(resp.headers.get("Retry-After"))
            raise HubUnavailable(f"hub answered {code}: {_excerpt(resp)}", str(code), ra)
        if code == 413:
            raise BatchTooLarge(f"hub answered 413 (batch of {len(batch.rows)} records, {len(batch.body)} bytes)")
        if not 200 <= code < 300:
            if code >= 500:
                raise HubUnavailable(f"hub answered {code}: {_excerpt(resp)}", str(code))
            error = _error_code(resp)
            if code == 401 and error == "replay":
                # Every attempt is signed afresh; a replay means a copy of our request got there first.
                raise HubUnavailable(f"hub saw this request's nonce already: {_excerpt(resp)}", "replay")
            if code == 409 and error == "batch_id_conflict":
                raise BatchConflict(f"hub holds other content under batch id {batch.batch_id}: {_excerpt(resp)}")
            raise BatchRefused(f"hub refused batch {batch.batch_id} with {code}: {_excerpt(resp)}", code)
        signature = resp.headers.get(RECEIPT_HEADER)
        body = resp.content
        if not signature:
            log(LOG, logging.ERROR, "hub answer carries no receipt signature; batch not delivered", batch_id=batch.batch_id, status=code)
            raise ReceiptUnverified(f"answer to batch {batch.batch_id} has no {RECEIPT_HEADER} header")
        try:
            doc = verify_receipt(body, signature, self.hub_public_key)
            # A compact receipt: its root recomputed from this batch's rows less those it lists.
            dept = self.department
            doc = expanded(doc, [(r.record_type, dept, r.record_key, r.seq, r.version) for r in batch.rows],
                           suite_of(self.hub_public_key).digest)
        except ReceiptInvalid as e:
            log(
                LOG, logging.ERROR, "RECEIPT DOES NOT VERIFY with the configured hub key; batch not delivered",
                batch_id=batch.batch_id, error=str(e),
            )
            raise ReceiptUnverified(f"receipt for batch {batch.batch_id} does not verify: {e}") from None
        return VerifiedReceipt(body, signature, doc)
