"""The sharing protocol between gateway and hub (see docs/protocol.md)."""

from gateway.protocol.batch import (
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    VERSION_HEADER,
    BatchMalformed,
    UnsupportedProtocol,
    encode_batch,
    make_batch,
    make_record,
    negotiate,
    parse_batch,
)
from gateway.protocol.canonical import canonical_json, record_version
from gateway.protocol.receipts import RECEIPT_HEADER, ReceiptInvalid, sign_receipt, verify_receipt
from gateway.protocol.signing import (
    KeyRevoked,
    SignatureRefused,
    VerifiedRequest,
    content_digest,
    sign_request,
    verify_request,
)

__all__ = [
    "PROTOCOL_VERSION", "SUPPORTED_VERSIONS", "VERSION_HEADER", "RECEIPT_HEADER",
    "BatchMalformed", "UnsupportedProtocol", "ReceiptInvalid", "SignatureRefused", "KeyRevoked", "VerifiedRequest",
    "canonical_json", "record_version", "content_digest", "sign_request", "verify_request",
    "sign_receipt", "verify_receipt", "make_batch", "make_record", "encode_batch", "parse_batch", "negotiate",
]
