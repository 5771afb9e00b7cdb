"""The error vocabulary shared by the API client, the downloader and the CLI.

Every failure a user can meet is a :class:`CivitaiTuiError` with a
:class:`FailureKind` (stable, stored in events and analytics), a message that
says what happened and what to do (already free of secrets), and the HTTP status
when there was one. ``retryable`` tells the retry policy whether trying again
can help; 401/403/404/410 never are.
"""

from __future__ import annotations

from enum import StrEnum

from civitai_tui.security.redact import mask_text


class FailureKind(StrEnum):
    """Why something failed; the value is what events and analytics store."""

    BAD_TARGET = "bad_target"  # the user's input cannot be understood
    BAD_CONFIG = "bad_config"  # a malformed config file, unknown key or invalid value
    INSECURE_URL = "insecure_url"  # http:// to a non-loopback host, bad redirect
    AUTH_REQUIRED = "auth_required"  # 401: no token, or the token is wrong
    FORBIDDEN = "forbidden"  # 403 without a more precise reason
    EARLY_ACCESS = "early_access"  # 403: early access until a deadline
    CHALLENGE = "challenge"  # Cloudflare-style HTML challenge page
    NOT_FOUND = "not_found"  # 404
    GONE = "gone"  # 410: archived or taken down
    QUOTA = "quota"  # 429 from /api/download: daily download quota used up
    RATE_LIMITED = "rate_limited"  # 429/503 with or without Retry-After
    SERVER = "server"  # 5xx
    NETWORK = "network"  # connection refused/reset, DNS, TLS
    STALLED = "stalled"  # no forward progress within the watchdog window
    PROTOCOL = "protocol"  # bad 206/Content-Range/Content-Length/encoding
    BAD_CONTENT = "bad_content"  # HTML or JSON where a model file should be
    SIZE_MISMATCH = "size_mismatch"
    HASH_MISMATCH = "hash_mismatch"
    INVALID_FORMAT = "invalid_format"  # e.g. a broken safetensors header
    UNSAFE = "unsafe"  # dangerous pickle, or CivitAI's own scan said Danger
    DISK_FULL = "disk_full"
    FILESYSTEM = "filesystem"  # permissions, bad destination
    CANCELLED = "cancelled"
    API = "api"  # an unexpected API answer (bad JSON, 400 from validation)
    INVALID_STATE = "invalid_state"  # a job action its state does not allow
    UNKNOWN_JOB = "unknown_job"
    ENGINE = "engine_unavailable"  # the engine process is not running or not answering
    INTERNAL = "internal"  # an exception nobody foresaw: a bug, reported per file


#: Kinds where trying again (after a delay) can help.
RETRYABLE_KINDS = frozenset(
    {
        FailureKind.RATE_LIMITED,
        FailureKind.SERVER,
        FailureKind.NETWORK,
        FailureKind.STALLED,
        FailureKind.PROTOCOL,
    }
)


class CivitaiTuiError(Exception):
    """A failure with a kind, a user-facing message and an optional HTTP status."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.kind = kind
        self.message = mask_text(message)
        self.status = status
        self.retry_after = retry_after
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def __str__(self) -> str:
        return self.message
