"""Declarative field mappings: source rows -> standard records.

Public API (the admin UI, the sync pipeline and the CLI use only these):

- ``load_mapping(path_or_text, record_type=None, columns=None) -> CompiledMapping``
  (raises MappingError listing every problem);
- ``CompiledMapping.map_row(row) -> (record | None, [RowProblem])``,
  ``.record_type``, ``.version``, ``.source_fields``;
- ``preview(mapping, rows, limit=20) -> [PreviewRow]``;
- ``CompiledMapping.map_batch(batch)`` (column by column), ``vectorised_plan(mapping)`` and
  ``row_fields_note(mapping)`` (which fields it computes row by row, and why);
- ``save_version``, ``current_version``, ``list_versions``, ``diff``, ``rollback``.

The file format is documented in docs/mappings.md.
"""

from gateway.mappings.compile import CompiledMapping, FieldProblem, load_mapping
from gateway.mappings.preview import PreviewRow, preview
from gateway.mappings.transforms import TransformContext, TransformFailure
from gateway.mappings.vectorised import row_fields_note, vectorised_plan
from gateway.mappings.versions import (
    MappingVersion,
    current_version,
    diff,
    get_text,
    list_versions,
    rollback,
    save_version,
)

__all__ = [
    "CompiledMapping",
    "FieldProblem",
    "MappingVersion",
    "PreviewRow",
    "TransformContext",
    "TransformFailure",
    "current_version",
    "diff",
    "get_text",
    "list_versions",
    "load_mapping",
    "preview",
    "rollback",
    "row_fields_note",
    "save_version",
    "vectorised_plan",
]
