"""The standard's workbook format, shared by the gateway and the hub: its layout (one sheet per
record type, headers, hidden field-name row), the template writer and a writer of records into
the same layout. Reading workbooks (with row-level errors) stays on the gateway side
(gateway.spreadsheet), which depends on the source adapters' text decoding."""
