"""The standard schema (gateway.standard.schema) and its validators (gateway.standard.validate)."""

from gateway.standard.schema import RECORD_TYPES, SCHEMA_VERSION, Field, RecordType, record_key, record_type
from gateway.standard.validate import FieldError, ValidationContext, normalize, validate

__all__ = [
    "RECORD_TYPES", "SCHEMA_VERSION", "Field", "FieldError", "RecordType", "ValidationContext",
    "normalize", "record_key", "record_type", "validate",
]
