"""Turn a question into a cited, streamed answer."""

from chains.options import Searcher, SearchOptions
from chains.pipeline import RagChain, to_messages
from chains.state import Done, RagResult, Source, SourcesReady, StreamEvent, Token, Trace

__all__ = [
    "Done",
    "RagChain",
    "RagResult",
    "SearchOptions",
    "Searcher",
    "Source",
    "SourcesReady",
    "StreamEvent",
    "Token",
    "Trace",
    "to_messages",
]
