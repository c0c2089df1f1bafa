"""Errors raised inside the app; the edges (app.py, CLIs) turn them into plain messages."""


class KnowledgeBaseError(Exception):
    """Base class: the message is written for the person using the app."""


class SettingsError(KnowledgeBaseError):
    """A setting has an invalid value."""


class EmbeddingMismatch(KnowledgeBaseError):
    """The collection was built with another embedding model or dimension."""


class StoreUnavailable(KnowledgeBaseError):
    """The vector database could not be reached."""


class StoreRefused(KnowledgeBaseError):
    """The vector database answered, and refused what it was given (invalid data, not an outage)."""


class ModelUnavailable(KnowledgeBaseError):
    """The chat or embedding model failed."""


class IngestError(KnowledgeBaseError):
    """A file cannot be indexed; the message says why."""


class UnsupportedFileType(IngestError):
    """The file's type is not one we can read."""


class EmptyDocument(IngestError):
    """The file holds no extractable text."""
