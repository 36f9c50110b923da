"""The assistants service's one Settings object, read from the environment users already have."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL = "sqlite:///data/sovereign_assistant.db"


class ConfigError(ValueError):
    """A setting that cannot work; its message is one line a user can act on."""


class Settings(BaseSettings):
    """Everything the service reads from its environment, with the documented defaults."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_key: str = "test-key"
    database_url: str = DEFAULT_DATABASE_URL
    sovereign_playground_url: str = "http://localhost:8080"
    sovereign_api_key: str | None = None
    use_mock_inference: bool = False
    log_level: str = "INFO"
    # Request limits, checked before a body is read (api/limits.py, http_protocol.py): the
    # largest JSON body, how long a request's headers and its body may take to arrive.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    request_header_timeout: float = Field(default=5.0, gt=0)
    request_body_timeout: float = Field(default=10.0, gt=0)
    # How long a run may wait in requires_action (and how long one may run) before it expires.
    run_expiry_seconds: int = Field(default=600, ge=1)
    # A run's executor holds a lease it renews by heartbeat; a lease that lapses means the
    # worker died, and the run is recovered by any replica.
    run_lease_seconds: float = Field(default=15.0, gt=0)
    # How often the executor looks for queued runs created by other replicas.
    run_poll_seconds: float = Field(default=0.5, gt=0)
    max_concurrent_runs: int = Field(default=256, ge=1)
    # Upstream limits: connecting, waiting for the first token, and silence between chunks.
    upstream_connect_timeout: float = Field(default=5.0, gt=0)
    upstream_first_token_timeout: float = Field(default=120.0, gt=0)
    upstream_idle_timeout: float = Field(default=60.0, gt=0)
    # How long a run waits for an upstream that is away (restarting, failing over, loading
    # its model) before it fails; 0 fails at once.
    upstream_retry_seconds: float = Field(default=60.0, ge=0)
    # The context window Responses fit their input into (estimated tokens): over it, a
    # response with truncation "auto" drops its oldest items, one with "disabled" is a 400.
    responses_context_tokens: int = Field(default=32768, ge=256)
    # Uploaded files' bytes; empty means ``files`` beside a SQLite database, else data/files.
    files_dir: str = ""
    # The largest upload POST /v1/files takes, enforced while the body is read.
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    # The model sovereign (SOVEREIGN_PLAYGROUND_URL) embeds file chunks and queries with.
    embedding_model: str = "nomic-embed-text"
    # Files ingested at once by this replica.
    ingestion_concurrency: int = Field(default=2, ge=1)
    # code_interpreter: Python in a bubblewrap sandbox, one session per thread.
    code_interpreter_timeout_seconds: float = Field(default=60.0, gt=0)
    code_interpreter_memory_mb: int = Field(default=1024, ge=64)
    code_interpreter_max_processes: int = Field(default=128, ge=8)
    code_interpreter_output_chars: int = Field(default=20_000, ge=100)
    code_interpreter_log_bytes: int = Field(default=1_000_000, ge=1000)
    code_interpreter_disk_mb: int = Field(default=1024, ge=1)
    code_interpreter_idle_seconds: float = Field(default=1200.0, gt=0)
    code_interpreter_max_sessions: int = Field(default=32, ge=1)
    code_interpreter_bwrap: str | None = None
    # Run as root, session N runs as host uid/gid base + N (no such user need exist).
    code_interpreter_uid_base: int = Field(default=200_000, ge=1000)
    code_interpreter_dir: str | None = None
    # Development only: run code WITHOUT a sandbox where none can be made (logged each time).
    code_interpreter_allow_unsandboxed: bool = False

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.upper()

    def database(self) -> URL:
        """DATABASE_URL as a SQLAlchemy URL, relative SQLite paths resolved against the project."""
        return resolve_database_url(self.database_url)

    def files_path(self) -> Path:
        """FILES_DIR resolved against the project root; by default beside the database."""
        if self.files_dir:
            path = Path(self.files_dir)
            return path if path.is_absolute() else PROJECT_ROOT / path
        url = self.database()
        if url.get_backend_name() == "sqlite":
            return Path(url.database or "").parent / "files"
        return PROJECT_ROOT / "data" / "files"

    @property
    def inference_base_url(self) -> str:
        """The upstream's OpenAI base URL, ending in /v1 whether or not the setting did."""
        base = self.sovereign_playground_url.rstrip("/")
        return base if base.endswith("/v1") else f"{base}/v1"


def resolve_database_url(raw: str) -> URL:
    """Parse a database URL; relative SQLite files live under the project root, never the cwd."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            f"DATABASE_URL {raw!r} is not a database URL "
            "(expected e.g. sqlite:///data/sovereign_assistant.db or "
            "postgresql://user@host:5432/db)"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise ConfigError(
                f"DATABASE_URL {raw!r} names no SQLite file; an in-memory database would lose "
                "everything on restart (use e.g. sqlite:///data/sovereign_assistant.db)"
            )
        path = Path(database)
        if not path.is_absolute():
            path = PROJECT_ROOT / path
        return url.set(drivername="sqlite", database=str(path))
    if backend == "postgresql":
        return url.set(drivername="postgresql+psycopg")
    raise ConfigError(
        f"DATABASE_URL {raw!r} uses {backend!r}; the supported databases are sqlite and postgresql"
    )
