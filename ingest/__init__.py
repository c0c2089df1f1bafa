"""Turn files into chunks in Milvus."""

from ingest.loaders import SUPPORTED, parse
from ingest.pipeline import FileInput, FileResult, Ingestor, collect_files
from ingest.recovery import Recovery

__all__ = ["SUPPORTED", "FileInput", "FileResult", "Ingestor", "Recovery", "collect_files", "parse"]
