"""What the user asked for on the command line, parsed into typed targets.

Accepted forms (README, "Download now"): civitai.com (or ``CIVITAI_BASE_URL``) model,
version and download URLs, ``model:ID[@VERSION]``, ``version:ID``, ``hash:HEX``,
AIR URNs, plain ``http(s)://`` file URLs, bulk ``user:``, ``tag:`` and
``search:`` targets, and ``@file`` lists (:func:`expand_target_args`).
Parsing is purely syntactic: nothing here touches the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from civitai_tui.civitai.urls import origin
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security.redact import mask_text, mask_url

MAX_ID = 2_147_483_647
#: AutoV1/CRC32 (8), AutoV2 (10), AutoV3 (12), SHA256/BLAKE3 (64).
HASH_LENGTHS = frozenset({8, 10, 12, 64})
CIVITAI_HOSTS = frozenset({"civitai.com", "www.civitai.com", "civitai.green", "www.civitai.green"})

ACCEPTED_FORMS = """accepted forms:
  https://civitai.com/models/123[/slug][?modelVersionId=456]
  https://civitai.com/api/download/models/456[?fileId=789]
  model:123   model:123@456   version:456   hash:<AutoV1|AutoV2|AutoV3|SHA256|BLAKE3 hex>
  urn:air:<ecosystem>:<type>:civitai:123@456
  https://example.org/file.safetensors   (a direct file URL)
  user:NAME   tag:NAME   search:"query"
  @FILE   (one target a line; blank lines and # comments skipped)"""


@dataclass(frozen=True)
class FileSpec:
    """The download URL's ``type/format/size/fp`` query: which file of a version."""

    type: str | None = None
    format: str | None = None
    size: str | None = None
    fp: str | None = None


@dataclass(frozen=True)
class ModelTarget:
    model_id: int
    version_id: int | None = None


@dataclass(frozen=True)
class VersionTarget:
    version_id: int
    file_id: int | None = None
    file_spec: FileSpec | None = None


@dataclass(frozen=True)
class HashTarget:
    hash: str  # upper-case hex


@dataclass(frozen=True)
class UrlTarget:
    url: str


@dataclass(frozen=True)
class UserTarget:
    name: str


@dataclass(frozen=True)
class TagTarget:
    name: str


@dataclass(frozen=True)
class SearchTarget:
    query: str


Target = (
    ModelTarget | VersionTarget | HashTarget | UrlTarget | UserTarget | TagTarget | SearchTarget
)

_AIR_RX = re.compile(r"urn:air:[^:]+:[^:]+:civitai:(\d+)(?:@(\d+))?", re.IGNORECASE)
_MODEL_RX = re.compile(r"(\d+)(?:@(\d+))?")


def _bad(text: str, why: str) -> CivitaiTuiError:
    return CivitaiTuiError(
        FailureKind.BAD_TARGET,
        f"cannot use {mask_text(text)!r} as a target: {why}\n{ACCEPTED_FORMS}",
    )


def _parse_id(text: str, raw: str, what: str) -> int:
    if not raw.isascii() or not raw.isdigit():
        raise _bad(text, f"{what} {raw!r} is not a number")
    value = int(raw)
    if not 1 <= value <= MAX_ID:
        raise _bad(text, f"{what} {raw} is out of range (1..{MAX_ID})")
    return value


def _is_civitai_url(url: str, base_url: str) -> bool:
    _, host, _ = origin(url)
    return host in CIVITAI_HOSTS or origin(url) == origin(base_url)


def _single(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _parse_civitai_url(text: str, url: str) -> Target:
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    query = parse_qs(parts.query)
    if len(segments) >= 2 and segments[0] == "models":
        model_id = _parse_id(text, segments[1], "model id")
        version = _single(query, "modelVersionId")
        version_id = _parse_id(text, version, "version id") if version else None
        return ModelTarget(model_id, version_id)
    if len(segments) == 2 and segments[0] == "model-versions":
        return VersionTarget(_parse_id(text, segments[1], "version id"))
    if len(segments) == 4 and segments[:3] == ["api", "download", "models"]:
        version_id = _parse_id(text, segments[3], "version id")
        file_id = _single(query, "fileId")
        if file_id:
            return VersionTarget(version_id, file_id=_parse_id(text, file_id, "file id"))
        spec = FileSpec(*(_single(query, k) for k in ("type", "format", "size", "fp")))
        return VersionTarget(version_id, file_spec=spec if spec != FileSpec() else None)
    if len(segments) >= 2 and segments[0] == "user":
        return UserTarget(segments[1])
    if len(segments) == 2 and segments[0] == "tag":
        return TagTarget(segments[1])
    raise _bad(text, "this CivitAI page is not a model, version or download link")


def _parse_url(text: str, base_url: str) -> Target:
    if _is_civitai_url(text, base_url):
        return _parse_civitai_url(text, text)
    if not urlsplit(text).hostname:
        raise _bad(text, "the URL has no host name")
    return UrlTarget(text)


def _parse_hash(text: str, value: str) -> HashTarget:
    if not re.fullmatch(r"[0-9A-Fa-f]+", value) or len(value) not in HASH_LENGTHS:
        raise _bad(
            text,
            "a hash is 8, 10, 12 or 64 hex digits (AutoV1/CRC32, AutoV2, AutoV3, SHA256/BLAKE3)",
        )
    return HashTarget(value.upper())


def _parse_name(text: str, value: str, what: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    if not value:
        raise _bad(text, f"the {what} is empty")
    return value


def _parse_prefixed(text: str, prefix: str, value: str) -> Target:
    if prefix == "model":
        match = _MODEL_RX.fullmatch(value)
        if not match:
            raise _bad(text, "write model:ID or model:ID@VERSION_ID")
        version = match.group(2)
        return ModelTarget(
            _parse_id(text, match.group(1), "model id"),
            _parse_id(text, version, "version id") if version else None,
        )
    if prefix == "version":
        return VersionTarget(_parse_id(text, value, "version id"))
    if prefix == "hash":
        return _parse_hash(text, value)
    if prefix == "user":
        return UserTarget(_parse_name(text, value, "user name"))
    if prefix == "tag":
        return TagTarget(_parse_name(text, value, "tag"))
    return SearchTarget(_parse_name(text, value, "search query"))


_PREFIXES = ("model", "version", "hash", "user", "tag", "search")


def parse_target(text: str, base_url: str) -> Target:
    """Parse one TARGET; anything unrecognised raises BAD_TARGET quoting the input."""
    stripped = text.strip()
    if not stripped:
        raise _bad(stripped, "it is empty")
    lowered = stripped.lower()
    if lowered.startswith(("http://", "https://")):
        return _parse_url(stripped, base_url)
    if lowered.startswith(("civitai.com/", "www.civitai.com/")):
        return _parse_civitai_url(stripped, "https://" + stripped)
    air = _AIR_RX.fullmatch(stripped)
    if air:
        version = air.group(2)
        return ModelTarget(
            _parse_id(stripped, air.group(1), "model id"),
            _parse_id(stripped, version, "version id") if version else None,
        )
    prefix, sep, value = stripped.partition(":")
    if sep and prefix.lower() in _PREFIXES:
        return _parse_prefixed(stripped, prefix.lower(), value.strip())
    if stripped.isdigit():
        raise _bad(
            stripped, f"a bare number is ambiguous; write model:{stripped} or version:{stripped}"
        )
    if "://" in stripped:
        raise _bad(stripped, "only http:// and https:// URLs can be downloaded")
    raise _bad(stripped, "unknown form")


def describe_target(target: Target) -> str:
    """A short, secret-free description of ``target`` for messages."""
    match target:
        case ModelTarget(model_id, None):
            return f"model:{model_id}"
        case ModelTarget(model_id, version_id):
            return f"model:{model_id}@{version_id}"
        case VersionTarget(version_id, file_id, _):
            return f"version:{version_id}" + (f" (file {file_id})" if file_id else "")
        case HashTarget(value):
            return f"hash:{value}"
        case UrlTarget(url):
            return mask_url(url)
        case UserTarget(name):
            return f"user:{name}"
        case TagTarget(name):
            return f"tag:{name}"
        case SearchTarget(query):
            return f"search:{query!r}"


#: An ``@FILE`` larger than this is refused (``@/dev/zero`` must not fill the memory);
#: 8 MiB holds about 100,000 URLs.
MAX_TARGET_FILE = 8 * 1024 * 1024
MAX_TARGETS = 100_000


def expand_target_args(args: Iterable[str]) -> list[str]:
    """``args`` with every ``@FILE`` replaced by the targets listed in that file."""
    out: list[str] = []
    for arg in args:
        if not arg.startswith("@"):
            out.append(arg)
            continue
        path = Path(arg[1:]).expanduser()
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_TARGET_FILE + 1)
            if len(data) > MAX_TARGET_FILE:
                raise CivitaiTuiError(
                    FailureKind.BAD_TARGET,
                    f"the target list {str(path)!r} is larger than "
                    f"{MAX_TARGET_FILE >> 20} MiB; split it into several files",
                )
            lines = data.decode("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise CivitaiTuiError(
                FailureKind.BAD_TARGET,
                f"cannot read the target list {str(path)!r}: {reason}; "
                "@FILE must name a readable UTF-8 text file with one target a line",
            ) from exc
        out.extend(s for s in (line.strip() for line in lines) if s and not s.startswith("#"))
        if len(out) > MAX_TARGETS:
            raise CivitaiTuiError(
                FailureKind.BAD_TARGET,
                f"more than {MAX_TARGETS} targets; split them into several jobs",
            )
    return out
