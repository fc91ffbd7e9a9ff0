"""The standard schema (gateway.standard.schema) and its validators."""

from gateway.standard.schema import RECORD_TYPES, SCHEMA_VERSION, Field, RecordType, record_key, record_type

__all__ = ["RECORD_TYPES", "SCHEMA_VERSION", "Field", "RecordType", "record_key", "record_type"]
