"""Verified, resumable HTTP downloads.

:func:`download` streams a URL into ``<dest>.part`` beside the destination,
resumes an interrupted transfer with an HTTP ``Range`` request (restarting
cleanly when the server ignores it), retries with exponential backoff, checks
the MD5 and only then renames the file into place. A file at ``dest`` is
therefore always complete and verified; a ``.part`` file is never trusted, only
continued.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["ChecksumError", "DownloadError", "download", "file_md5"]

CHUNK = 1 << 20
BACKOFF_SECONDS = 0.5
"""Default first wait between attempts; doubles after each failed attempt."""


class DownloadError(OSError):
    """A download failed after its retries; the message says how to get the file by hand."""


class ChecksumError(ValueError):
    """A file's checksum differs from the expected one; the bad file has been removed."""


def file_md5(path: str | os.PathLike[str], chunk: int = CHUNK) -> str:
    """Hex MD5 of a file, read in chunks (constant memory)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    md5: str | None,
    timeout: float | tuple[float, float] = (10.0, 30.0),
    retries: int = 3,
    backoff: float | None = None,
    progress: bool | None = None,
    manual_hint: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying ``md5``.

    Args:
        url: http(s) or file URL.
        dest: final path; its directory must exist. Partial data goes to
            ``dest + ".part"`` and is resumed by a later call.
        md5: expected hex MD5, or ``None`` to skip verification (not recommended).
        timeout: seconds to connect and seconds of silence allowed while
            reading; one number sets both.
        retries: further attempts after a failed one, each resuming where the
            last stopped; waits ``backoff * 2**k`` seconds before attempt ``k+1``
            (``backoff`` defaults to :data:`BACKOFF_SECONDS`).
        progress: show a tqdm bar (bytes, rate, ETA); ``None`` shows it only
            when stderr is a terminal.
        manual_hint: appended to the error when the download fails, e.g. where
            to put the file by hand.
        sleep: the backoff's sleep (replaceable in tests).

    Returns:
        ``Path(dest)``.

    Raises:
        DownloadError: every attempt failed (connection refused, timeout, HTTP
            error, ...); names the URL, the last cause and ``manual_hint``.
        ChecksumError: the complete file has another MD5; the file is removed
            and the message gives both checksums and the URL.
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("http", "https", "file"):
        raise ValueError(f"download needs an http, https or file URL, got {url!r}")
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    connect_timeout, read_timeout = (timeout, timeout) if isinstance(timeout, (int, float)) else timeout
    show = sys.stderr.isatty() if progress is None else progress
    last_error: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt:
            sleep((BACKOFF_SECONDS if backoff is None else backoff) * 2 ** (attempt - 1))
        try:
            _fetch_into(url, part, connect_timeout, read_timeout, show)
        except urllib.error.HTTPError as e:
            last_error = e
            if 400 <= e.code < 500 and e.code not in (408, 416, 429):
                break  # retrying will not help: 404, 403, ...
        except (OSError, http.client.HTTPException) as e:
            last_error = e
        else:
            last_error = None
            break
    if last_error is not None:
        hint = f" {manual_hint}" if manual_hint else ""
        raise DownloadError(
            f"could not download {url} after {attempt + 1} attempt(s): "
            f"{type(last_error).__name__}: {last_error}.{hint}"
        ) from last_error
    if md5 is not None:
        actual = file_md5(part)
        if actual != md5.lower():
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"{url} downloaded with md5 {actual}, expected {md5.lower()}; the file was "
                "removed. The server or mirror serves another file: check the url/md5 you passed"
            )
    os.replace(part, dest)
    return dest


def _fetch_into(url: str, part: Path, connect_timeout: float, read_timeout: float, show: bool) -> None:
    """One attempt: continue ``part`` from its current size, or start over."""
    from tqdm import tqdm  # here, not at import: tqdm reads its TQDM_* environment on import

    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "tinytorch-data"})  # noqa: S310
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        # The scheme was checked in download(): http, https or file only.
        response = urllib.request.urlopen(request, timeout=connect_timeout)  # noqa: S310
    except urllib.error.HTTPError as e:
        if e.code == 416:  # our partial file is no prefix the server knows: start over
            part.unlink(missing_ok=True)
        raise
    with response:
        _set_read_timeout(response, read_timeout)
        status = getattr(response, "status", 200)
        if offset and not (status == 206 and _range_start(response) == offset):
            offset = 0  # the server ignored the Range request: start over
        total = _total_size(response, offset)
        mode = "ab" if offset else "wb"
        with (
            open(part, mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not show,
                file=sys.stderr,
            ) as bar,
        ):
            received = _copy(response, out, bar.update)
        if total is not None and offset + received < total:
            raise http.client.IncompleteRead(b"", total - offset - received)


def _copy(response: IO[bytes], out: IO[bytes], update: Callable[[int], Any]) -> int:
    received = 0
    while block := response.read(CHUNK):
        out.write(block)
        received += len(block)
        update(len(block))
    return received


def _range_start(response: Any) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _total_size(response: Any, offset: int) -> int | None:
    length = response.headers.get("Content-Length")
    return offset + int(length) if length is not None and length.isdigit() else None


def _set_read_timeout(response: Any, seconds: float) -> None:
    """Apply the read timeout to the response's socket (connect used the other one)."""
    raw = getattr(getattr(response, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    if isinstance(sock, socket.socket):
        sock.settimeout(seconds)
