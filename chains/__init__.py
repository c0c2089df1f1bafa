"""Turn a question into a cited, streamed answer."""

from chains.pipeline import RagChain, RagResult, SearchOptions, Source, Trace, to_messages

__all__ = ["RagChain", "RagResult", "SearchOptions", "Source", "Trace", "to_messages"]
