"""The plain reference downloader: one aiohttp connection per file, all files at once.

This is the "plain one-connection-per-file downloader" the project compares
against: a GET per file, ``iter_any()`` reads, ``os.pwrite`` at the running
offset into a preallocated ``<name>.part``, renamed into place only when the
byte count matches ``Content-Length``. No segments, no retries.

Usage: ``python -m bench.plain --dest DIR URL...``; exit status 1 if any file failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp

READ_BUFSIZE = 1024 * 1024


async def fetch(session: aiohttp.ClientSession, url: str, dest: Path) -> int:
    """Download ``url`` into ``dest``; return the byte count."""
    target = dest / unquote(Path(urlsplit(url).path).name)
    partial = target.with_name(target.name + ".part")
    async with session.get(url, headers={"Accept-Encoding": "identity"}) as response:
        if response.status != 200 or response.content_length is None:
            raise RuntimeError(f"{url}: HTTP {response.status}, length {response.content_length}")
        expected = response.content_length
        try:
            written = await _write_body(response, partial, expected)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    if written != expected:
        partial.unlink()
        raise RuntimeError(f"{url}: got {written} of {expected} bytes")
    partial.replace(target)
    return written


async def _write_body(response: aiohttp.ClientResponse, partial: Path, expected: int) -> int:
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if expected:
            os.posix_fallocate(fd, 0, expected)
        offset = 0
        async for block in response.content.iter_any():
            offset += os.pwrite(fd, block, offset)
        return offset
    finally:
        os.close(fd)


async def fetch_all(urls: list[str], dest: Path) -> list[BaseException | int]:
    """Every URL at once, each on its own connection."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60),
        read_bufsize=READ_BUFSIZE,
        auto_decompress=False,
        trust_env=True,  # https_proxy in the through-proxy profile
    )
    async with session:
        return await asyncio.gather(
            *(fetch(session, url, dest) for url in urls), return_exceptions=True
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plain", description=__doc__)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args(argv)
    args.dest.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(fetch_all(args.urls, args.dest))
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        print(f"plain: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
