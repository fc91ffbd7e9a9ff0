"""Moved to gateway.safe_cells, which the hub's exports share without loading the spreadsheet importer."""

from gateway.safe_cells import TRIGGERS, append_row, csv_writer, neutralise, restore, set_cell, write_only_row

__all__ = ["TRIGGERS", "append_row", "csv_writer", "neutralise", "restore", "set_cell", "write_only_row"]
