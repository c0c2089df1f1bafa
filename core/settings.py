"""The one place configuration is read: environment variables and `.env`."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import SettingsError

COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
# The bounds of per-question options, shared by the settings, the settings panel and the chain's clamp.
MAX_K = 20
MAX_REWRITES = 8
DEFAULT_EMBEDDING_MODELS = {"local": "all-MiniLM-L6-v2", "openai": "text-embedding-3-small"}


class Settings(BaseSettings):
    """App settings: `RAG_*` variables, plus the providers' standard names."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_",
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    # Milvus. Never read MILVUS_URI: pymilvus itself crashes on a file path there.
    milvus_uri: str = Field("./data/milvus.db", min_length=1)
    milvus_token: SecretStr | None = None
    collection: str = "knowledge"
    files_dir: str = "./data/files"  # originals of indexed files: PDFs open at the cited page, re-index reads them
    # The sources of stored answers (passages, PDF pages), so history and shared conversations can open them:
    sources_dir: str = "./data/sources"  # on this disk, served only to people who may read the conversation
    sources_bucket: str = ""  # or an S3 bucket (needs `pip install '.[s3]'`; boto3's AWS_* credentials)
    sources_endpoint_url: str = ""  # an S3-compatible store (MinIO, Ceph, R2, ...) instead of AWS

    # Team: sign-in, history, scopes
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./data/app.db")  # users, chat history, feedback
    default_scope: Literal["team", "private"] = "team"
    auth_header: str = Field("", pattern=r"^[A-Za-z0-9-]*$")  # e.g. X-Forwarded-User, set by a trusted proxy
    auth_auto_signup: bool = False  # let unknown OAuth / header users in as members
    # Chainlit's own variable (it signs session tokens): read here only to check it is set.
    auth_secret: SecretStr | None = Field(None, validation_alias=AliasChoices("CHAINLIT_AUTH_SECRET", "auth_secret"))

    # Models
    embedding_provider: Literal["local", "openai"] = "local"
    embedding_model: str = ""
    embedding_base_url: str | None = None  # an embeddings server apart from the chat one (default: OPENAI_BASE_URL)
    model_cache_dir: str = ""  # default: $XDG_CACHE_HOME/team-knowledge-assistant (~/.cache/...)
    # The standard cache location (not RAG_-prefixed), read here so that nothing else reads the environment.
    xdg_cache_home: str = Field("", validation_alias=AliasChoices("XDG_CACHE_HOME", "xdg_cache_home"))
    chat_provider: Literal["auto", "openai", "extractive"] = "auto"
    chat_model: str = "gpt-4o-mini"
    temperature: float = Field(0.1, ge=0.0, le=2.0)
    max_tokens: int = Field(1024, ge=16, le=65_536)  # the longest reply the chat model may generate
    openai_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key"))
    openai_base_url: str | None = Field(None, validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url"))
    request_timeout: float = Field(60.0, gt=0, le=600)

    # Ingest
    chunk_size: int = Field(1000, ge=100, le=8000)
    chunk_overlap: int = Field(150, ge=0)
    max_file_mb: float = Field(50.0, gt=0, le=1024)
    max_files_per_message: int = Field(20, ge=1, le=1000)
    unsent_upload_ttl_s: float = Field(900.0, ge=1, le=86_400)  # an attached file never sent is deleted after this
    max_chunks_per_file: int = Field(10_000, ge=1, le=1_000_000)

    # Retrieval and answering
    rewrites: int = Field(1, ge=0, le=MAX_REWRITES)
    k: int = Field(5, ge=1, le=MAX_K)
    search_mode: Literal["similarity", "mmr"] = "similarity"
    hybrid_search: bool = True  # also search Milvus's BM25 full-text index (Milvus >= 2.5, Milvus Lite)
    score_threshold: float = Field(0.25, ge=-1.0, le=1.0)
    # Below a best score of 0.45, the share of the question's (IDF-weighted) words the documents must
    # contain, or the answer says they never mention the rest (0 disables). README: Evaluation.
    min_support: float = Field(0.7, ge=0.0, le=1.0)
    # Below the same best score, the share of that weight at least one retrieved passage must hold, or the
    # answer says nothing found answers it (0 disables). README: Evaluation.
    min_coverage: float = Field(0.2, ge=0.0, le=1.0)
    history_turns: int = Field(4, ge=0, le=50)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not COLLECTION_NAME.match(self.collection):
            raise ValueError(
                "RAG_COLLECTION must start with a letter or _ and hold only letters, digits and _ "
                f"(got {self.collection!r})"
            )
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"RAG_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than RAG_CHUNK_SIZE ({self.chunk_size})"
            )
        if not self.database.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("RAG_DATABASE_URL must be sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB")
        if not self.model_cache_dir:
            base = Path(self.xdg_cache_home) if self.xdg_cache_home else Path.home() / ".cache"
            self.model_cache_dir = str(base / "team-knowledge-assistant")
        if not self.embedding_model:
            self.embedding_model = DEFAULT_EMBEDDING_MODELS[self.embedding_provider]
        if self.embedding_provider == "openai" and not (
            self.openai_api_key or self.openai_base_url or self.embedding_base_url
        ):
            raise ValueError(
                "RAG_EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY, OPENAI_BASE_URL or RAG_EMBEDDING_BASE_URL"
            )
        if self.chat_provider == "openai" and not (self.openai_api_key or self.openai_base_url):
            raise ValueError("RAG_CHAT_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL")
        return self

    @property
    def uses_chat_model(self) -> bool:
        """Whether answers come from a chat model (else: extractive answers)."""
        if self.chat_provider == "extractive":
            return False
        return self.chat_provider == "openai" or bool(self.openai_api_key or self.openai_base_url)

    @property
    def database(self) -> str:
        """The async SQLAlchemy URL of the users / history database (plain driver names accepted)."""
        url = self.database_url.get_secret_value()
        for plain, driver in (("sqlite://", "sqlite+aiosqlite://"), ("postgresql://", "postgresql+asyncpg://")):
            if url.startswith(plain):
                return driver + url.removeprefix(plain)
        if url.startswith("postgres://"):
            return "postgresql+asyncpg://" + url.removeprefix("postgres://")
        return url

    @property
    def embeddings_url(self) -> str | None:
        """Where remote embeddings come from (None: OpenAI itself)."""
        return self.embedding_base_url or self.openai_base_url

    @property
    def is_milvus_lite(self) -> bool:
        """Whether the URI names a local Milvus Lite file rather than a server."""
        return not self.milvus_uri.startswith(("http://", "https://", "tcp://", "grpc://", "unix:"))


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one plain message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "RAG_" + ".".join(str(p) for p in err["loc"]).upper() if err["loc"] else ""
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {msg}" if name else msg)
        raise SettingsError("Invalid settings: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
