"""The chat's edge: guards, history and rendering between Chainlit and the chains/ingest modules."""
