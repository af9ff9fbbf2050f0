"""Archives of pruned work orders (issue 29, item 4), and the shape exports share with them.

- records.py: the archive's shape (one work order per line, with its runs, step runs and events);
  message_json.py: the fast protobuf-to-JSON path that writes it.
- sink.py: `ArchiveSink`, named blobs written whole and durably (`DirectorySink`: a directory;
  an S3-compatible sink would be another implementation of the same three methods).
- writer.py: `Archiver.write(records)`, what the pruner calls before it deletes a batch.
- manifest.py: each file's manifest (size, SHA-256, counts); reader.py: verify and read back;
  command.py: `runstatus archive verify|show`.
"""

from .records import ArchivedWorkOrder
from .sink import ArchiveSink, DirectorySink
from .writer import Archiver

__all__ = ["ArchiveSink", "ArchivedWorkOrder", "Archiver", "DirectorySink"]
