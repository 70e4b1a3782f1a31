"""The library's SQLite storage. Every SQL statement of Folio lives here."""
from .db import integrity_ok, open_db
from .errors import StorageFull
from .records import DocumentRecord, PageRecord, SegmentRecord
from .schema import SCHEMA_VERSION, SchemaTooNew

__all__ = ["DocumentRecord", "PageRecord", "SCHEMA_VERSION", "SchemaTooNew",
           "SegmentRecord", "StorageFull", "integrity_ok", "open_db"]
