"""The library's SQLite storage. Every SQL statement of Folio lives here."""
from .db import integrity_ok, open_db
from .records import DocumentRecord, PageRecord, SegmentRecord
from .schema import SCHEMA_VERSION, SchemaTooNew

__all__ = ["DocumentRecord", "PageRecord", "SCHEMA_VERSION", "SchemaTooNew",
           "SegmentRecord", "integrity_ok", "open_db"]
