"""The standard's spreadsheet path: XLSX template, workbook/CSV import with row-level
error reports, and formula-injection-safe CSV/XLSX export (safe_cells)."""

from gateway.safe_cells import csv_writer, neutralise
from gateway.spreadsheet.export import export_csv, write_error_csv, write_error_list_xlsx, write_error_workbook
from gateway.spreadsheet.importer import (
    ImportedRecord,
    ImportResult,
    RowError,
    import_csv,
    import_workbook,
    iter_csv,
    iter_workbook,
)
from gateway.workbook.template import write_template

__all__ = [
    "ImportResult", "ImportedRecord", "RowError", "csv_writer", "export_csv", "import_csv", "import_workbook",
    "iter_csv", "iter_workbook", "neutralise", "write_error_csv", "write_error_list_xlsx", "write_error_workbook",
    "write_template",
]
