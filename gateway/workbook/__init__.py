"""The standard's workbook format, shared by the gateway and the hub: its layout (one sheet per
record type, headers, hidden field-name row), the template writer, a writer of records into the
same layout, its reader with row-level errors (read.py; the gateway's CSV import adds CSV files on
top of it in gateway.spreadsheet) and the detached signature of a workbook sent upward."""
