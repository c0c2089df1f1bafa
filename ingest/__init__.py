"""Turn files into chunks in Milvus."""

from ingest.files import FileInput, FileResult, collect_files
from ingest.loaders import SUPPORTED, parse
from ingest.pipeline import Ingestor
from ingest.recovery import Recovery

__all__ = ["SUPPORTED", "FileInput", "FileResult", "Ingestor", "Recovery", "collect_files", "parse"]
