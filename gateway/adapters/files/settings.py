"""Declared settings shared by every file-drop adapter (folder, sftp, xml)."""

from __future__ import annotations

from gateway.adapters.base import Setting

PARSING = (
    Setting("format", str, default="auto", choices=("auto", "csv", "xlsx", "xls", "xml"),
            help="File format; auto = by extension (.csv/.txt, .xlsx, .xls, .xml)"),
    Setting("encoding", str, default="auto", choices=("auto", "utf-8", "gb18030", "gbk"),
            help="CSV text encoding (auto: BOM, else strict UTF-8, else GB18030); for XML overrides the declared one"),
    Setting("delimiter", str, default=",", help="CSV field delimiter, e.g. ',' ';' '\\t' '|'"),
    Setting("quotechar", str, default='"', help="CSV quote character"),
    Setting("header_row", int, default=1, help="Row number of the header in CSV/XLSX/XLS (0 = no header: column_1, column_2, ...)"),
    Setting("sheet", str, help="XLSX/XLS sheet name (default: the first sheet)"),
    Setting("record_path", str, help="XML record element path, e.g. '/导出/物资', '物资' or 'x:items/x:item' (default: children of the root)"),
    Setting("namespaces", dict, default={}, help="XML namespace prefixes used in record_path, e.g. {x = \"urn:dept:export\"}"),
    Setting("max_depth", int, default=256, help="XML: deepest element nesting accepted"),
    Setting("max_text_bytes", int, default=10_000_000, help="XML: largest text node accepted (bytes)"),
)

DROP = (
    Setting("key_columns", (list, str), required=True, help="Column(s) or XML path(s) forming the source key, e.g. ['id'] or ['@code']"),
    Setting("pattern", str, default="*", help="File name glob(s), ';'-separated, e.g. '*.csv;*.xlsx'"),
    Setting("mode", str, default="append", choices=("append", "snapshot"),
            help="append: each file is a delta; snapshot: each file is the full set (keys missing from it are deletes)"),
    Setting("completion", str, default="stable", choices=("stable", "marker", "atomic"),
            help="When a file is complete: stable = size and mtime unchanged across two polls; "
                 "marker = a NAME.done/.ok (or STEM.done/.ok) file exists; atomic = the producer renames finished files into place"),
    Setting("stable_seconds", (int, float), default=10, help="'stable' rule: least time between the two polls that must agree"),
    Setting("archive_dir", str, help="Move processed files here (relative to the drop folder unless absolute)"),
    Setting("error_dir", str, help="Move files that cannot be read here"),
    Setting("checkpoint_rows", int, default=5000, help="append mode: commit the position every this many rows inside a file"),
    Setting("remember_days", int, default=90, help="How long the content hash of a file gone from the folder is remembered (re-drops are skipped)"),
    Setting("max_files_remembered", int, default=100_000, help="Upper bound of remembered file contents"),
    Setting("max_file_bytes", int, default=2_000_000_000, help="Larger files are refused"),
    Setting("spool_dir", str, path=True, help="Local folder for the temporary copy of each file being read (default: system temp)"),
)
