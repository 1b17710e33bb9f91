"""Verified, resumable HTTP downloads that never replace a file the user put in place.

:func:`download` streams a URL into ``<dest>.part`` beside the destination, resumes an
interrupted transfer with an HTTP ``Range`` request (restarting cleanly when the server ignores
it), retries with exponential backoff, checks the MD5, fsyncs, and only then moves the file into
place, refusing to replace an existing ``dest``. A file at ``dest`` written by this module is
therefore always complete and verified; a ``.part`` file is never trusted, only continued. The
only files this module ever removes are its own ``.part`` files.

The errors carry structured attributes (:class:`DownloadError`, :class:`ChecksumError`) so a
command-line front end can word the fix in its own terms (flags) without parsing messages; the
messages themselves use the Python keywords and environment variables named by
:class:`SourceOptions`.
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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tinytorch.data.storage.atomic import move_into_place, named_os_error
from tinytorch.data.storage.regular_files import open_regular
from tinytorch.data.validate import check_float, check_int

__all__ = [
    "ChecksumError",
    "DownloadError",
    "SourceError",
    "SourceOptions",
    "check_md5",
    "check_url",
    "download",
    "file_md5",
]

CHUNK = 1 << 20
BACKOFF_SECONDS = 0.5
"""Default first wait between attempts; doubles after each failed attempt."""

_MD5 = re.compile(r"[0-9a-fA-F]{32}")


@dataclass(frozen=True)
class SourceOptions:
    """How a caller lets the user choose where a file comes from, for the fixes errors suggest.

    Attributes:
        url_keyword, md5_keyword: the Python keywords (``url=``, ``md5=``).
        url_env, md5_env: the environment variables read when the keywords are not given
            (e.g. ``TINYTORCH_CIFAR10_URL``), or ``None``.
    """

    url_keyword: str = "url"
    md5_keyword: str = "md5"
    url_env: str | None = None
    md5_env: str | None = None

    def pass_md5(self, md5: str) -> str:
        """``"pass md5='...' (or set $X_MD5=...)"``."""
        env = f" (or set {self.md5_env}={md5})" if self.md5_env else ""
        return f"pass {self.md5_keyword}={md5!r}{env}"

    def choose_mirror(self) -> str:
        """``"choose a mirror with url=/md5= (or $X_URL/$X_MD5)"``."""
        env = f" (or {self.url_env}/{self.md5_env})" if self.url_env and self.md5_env else ""
        return f"choose a mirror with {self.url_keyword}=/{self.md5_keyword}={env}"


def _rebuild(cls: type[BaseException], message: str, state: dict[str, Any]) -> BaseException:
    error = cls.__new__(cls)
    BaseException.__init__(error, message)
    error.__dict__.update(state)
    return error


class DownloadError(OSError):
    """A download failed after its retries; the message says how to get the file by hand.

    Attributes:
        url: the address tried.
        path: where the file is expected; putting a copy there by hand is the offline fix.
        expected_md5: the MD5 such a copy must have (``None``: not checked).
        attempts: how many attempts were made.
        options: the keywords and environment variables that choose the source.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        path: Path,
        expected_md5: str | None,
        attempts: int,
        options: SourceOptions,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.path = path
        self.expected_md5 = expected_md5
        self.attempts = attempts
        self.options = options

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), str(self), self.__dict__)


class ChecksumError(ValueError):
    """A file's MD5 differs from the expected one.

    Attributes:
        path: the file that did not verify.
        expected_md5: the MD5 it should have had.
        actual_md5: the MD5 it has.
        url: where it was downloaded from, or ``None`` for a file found in place.
        removed: True when the library removed it (its own ``.part`` download); a file found in
            place (the user's) is never removed (``removed`` is False).
        options: the keywords and environment variables that choose the source and checksum.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path,
        expected_md5: str,
        actual_md5: str,
        url: str | None,
        removed: bool,
        options: SourceOptions,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.expected_md5 = expected_md5
        self.actual_md5 = actual_md5
        self.url = url
        self.removed = removed
        self.options = options

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), str(self), self.__dict__)


class SourceError(ValueError):
    """A ``url=``/``md5=`` keyword or its environment variable holds a value that cannot be right.

    Attributes:
        name: the keyword (``"md5"``, ``"url"``) or the variable (``"$TINYTORCH_CIFAR10_MD5"``).
        value: what it held.
    """

    def __init__(self, message: str, *, name: str, value: str) -> None:
        super().__init__(message)
        self.name, self.value = name, value

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), str(self), self.__dict__)


def check_md5(value: object, name: str) -> str:
    """``value`` as a lowercase hex MD5; ``name`` (a keyword or variable) is named otherwise.

    Raises:
        TypeError: not a string.
        SourceError: not 32 hex digits (a ``ValueError``).
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a hex MD5 string, got {type(value).__name__} {value!r}")
    if not _MD5.fullmatch(value.strip()):
        raise SourceError(
            f"{name} must be 32 hex digits (an MD5 checksum), got {value!r}", name=name, value=value
        )
    return value.strip().lower()


def check_url(value: str, name: str) -> str:
    """``value`` if it is an http, https or file URL; ``name`` (a keyword or variable) is named
    otherwise, with the ``file://`` form of a plain path as the fix.

    Raises:
        SourceError: another scheme, or a plain path (a ``ValueError``).
    """
    scheme = value.split(":", 1)[0].lower() if ":" in value else ""
    if scheme not in ("http", "https", "file"):
        path = Path(value).expanduser()
        fix = f"; for a file on disk write {path.resolve().as_uri()}" if not scheme else ""
        raise SourceError(
            f"{name} must be an http, https or file URL, got {value!r}{fix}", name=name, value=value
        )
    return value


def file_md5(path: str | os.PathLike[str], chunk: int = CHUNK) -> str:
    """Hex MD5 of a file, read in chunks (constant memory).

    Raises:
        OSError: the file cannot be read (names it).
    """
    chunk = check_int(chunk, "chunk", minimum=1)
    digest = hashlib.md5(usedforsecurity=False)
    with os.fdopen(open_regular(path), "rb") as f:
        try:
            while block := f.read(chunk):
                digest.update(block)
        except OSError as e:  # e.g. EIO: read errors name no file
            raise named_os_error(e, path, "read") from e
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
    options: SourceOptions | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying ``md5``.

    Args:
        url: http(s) or file URL.
        dest: final path; its directory must exist and ``dest`` must not (an existing file may be
            the user's: it is never replaced). Partial data goes to ``dest + ".part"`` and is
            resumed by a later call.
        md5: expected hex MD5, or ``None`` to skip verification (not recommended).
        timeout: seconds to connect and seconds of silence allowed while reading; one number
            sets both. Numbers of any real kind (numpy scalars too), > 0.
        retries: further attempts after a failed one (an int >= 0), each resuming where the
            last stopped; waits ``backoff * 2**k`` seconds before attempt ``k+1``
            (``backoff`` defaults to :data:`BACKOFF_SECONDS`).
        progress: show a tqdm bar (bytes, rate, ETA); ``None`` shows it only when stderr is a
            terminal.
        options: the keywords and environment variables the caller offers for the source, used
            in the errors' advice (default: ``url=``/``md5=``, no variables).
        sleep: the backoff's sleep (replaceable in tests).

    Returns:
        ``Path(dest)``.

    Raises:
        FileExistsError: ``dest`` exists.
        DownloadError: every attempt failed (connection refused, timeout, HTTP error, ...); names
            the URL, the last cause, and where to put the file by hand (see its attributes).
        ChecksumError: the complete download has another MD5; the ``.part`` file is removed
            (``removed=True``) and the message gives both checksums, the URL and the fix.
        OSError: the file could not be written (names it).
    """
    check_url(url, "url")
    md5 = None if md5 is None else check_md5(md5, "md5")
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ValueError(f"timeout must be a number or a (connect, read) pair, got {timeout!r}")
        connect_timeout, read_timeout = (
            check_float(t, "timeout", minimum=0, exclusive_minimum=True) for t in timeout
        )
    else:
        connect_timeout = read_timeout = check_float(timeout, "timeout", minimum=0, exclusive_minimum=True)
    retries = check_int(retries, "retries", minimum=0)
    wait = BACKOFF_SECONDS if backoff is None else check_float(backoff, "backoff", minimum=0)
    options = options or SourceOptions()
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} exists; download() never replaces a file (it may be yours)")
    part = dest.with_name(dest.name + ".part")
    show = sys.stderr.isatty() if progress is None else progress
    last_error: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt:
            sleep(wait * 2 ** (attempt - 1))
        try:
            _fetch_into(url, part, connect_timeout, read_timeout, show)
        except urllib.error.HTTPError as e:
            last_error = e
            if 400 <= e.code < 500 and e.code not in (408, 416, 429):
                break  # retrying will not help: 404, 403, ...
        except _LocalWriteError as e:  # the original OSError, named; its cause kept
            if e.cause is None:
                raise e.error from None
            raise e.error from e.cause
        except (OSError, http.client.HTTPException) as e:
            last_error = e
        else:
            last_error = None
            break
    if last_error is not None:
        where = f" (md5 {md5})" if md5 else ""
        raise DownloadError(
            f"could not download {url} after {attempt + 1} attempt(s): "
            f"{type(last_error).__name__}: {last_error}. No network? Download {url}{where} on "
            f"another machine and put it at {dest}, or {options.choose_mirror()}",
            url=url,
            path=dest,
            expected_md5=md5,
            attempts=attempt + 1,
            options=options,
        ) from last_error
    if md5 is not None:
        actual = file_md5(part)
        if actual != md5:
            part.unlink(missing_ok=True)  # our own download: the one kind of file we remove
            raise ChecksumError(
                f"{url} served a file with md5 {actual}, expected {md5}; the download was removed "
                f"and nothing was put at {dest}. If {url} is the mirror you meant and you trust "
                f"it, {options.pass_md5(actual)}; otherwise check the {options.url_keyword}= you "
                "passed",
                path=part,
                expected_md5=md5,
                actual_md5=actual,
                url=url,
                removed=True,
                options=options,
            )
    move_into_place(part, dest)
    return dest


class _LocalWriteError(Exception):
    """Writing the ``.part`` file failed: a local problem that retrying cannot fix."""

    def __init__(self, error: OSError, cause: OSError | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.cause = cause


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
        try:
            out = open(part, "ab" if offset else "wb")  # noqa: SIM115 - closed by the with below
        except OSError as e:
            raise _LocalWriteError(e, None) from e
        with (
            out,
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
            received = _copy(response, out, bar.update, part)
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as e:
                raise _LocalWriteError(named_os_error(e, part, "write"), e) from e
        if total is not None and offset + received < total:
            raise http.client.IncompleteRead(b"", total - offset - received)


def _copy(response: IO[bytes], out: IO[bytes], update: Callable[[int], Any], part: Path) -> int:
    received = 0
    while block := response.read(CHUNK):
        try:
            out.write(block)
        except OSError as e:  # disk full: not a network fault, so no retry
            raise _LocalWriteError(named_os_error(e, part, "write"), e) from e
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
