"""The one reader of the files a user names: regular files only, never more than a limit.

Every command that reads a spec (``check``, ``summary``, ``export``, ``--update-expect``,
the library's ``load``) reads it here, so each gets the same guards: a device such as
``/dev/zero`` would be read until memory runs out and a FIFO would block forever, so
anything but a regular file is refused before a byte is read (the file is opened
non-blocking, then examined with ``fstat``: no window between the check and the read);
a file larger than the limit is refused from its size alone, and a file that grows while
it is read stops at the limit. Paths that cannot be opened (missing, a directory, no
permission, a name too long, a loop of links) are one line each.

Errors are :class:`~shapecalc.errors.SpecError` without a location whose message starts
with the path (``spec.yaml: no such file``), except bytes that are not UTF-8, located at
1:1 as the loader always located them.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from .errors import Location, SpecError

#: the largest spec file read, in bytes. The largest spec the bench measures (100,000 written-out
#: conv2d layers) is 2.7 MB; a real network's spec is a few KB. Work on a spec is bounded by a
#: small function of its size (see ``bench/README.md``), so this bounds the work of any command.
MAX_SPEC_BYTES = 8 * 2**20


def read_bytes(path: str | os.PathLike[str], *, what: str = "a spec file", max_bytes: int = MAX_SPEC_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; :class:`SpecError` for anything else.

    ``what`` names the expected file in messages (``is a directory, not a spec file``).
    """
    file = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(file, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise SpecError(f"{file}: no such file") from None
    except IsADirectoryError:  # some systems refuse to open a directory at all
        raise SpecError(f"{file}: is a directory, not {what}") from None
    except PermissionError:
        raise SpecError(f"{file}: permission denied") from None
    except OSError as e:  # a name too long, a loop of symbolic links, ...
        raise SpecError(f"{file}: cannot be read ({e.strerror or e})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SpecError(f"{file}: is a directory, not {what}")
        if not stat.S_ISREG(info.st_mode):  # /dev/zero never ends, a FIFO may never start
            raise SpecError(f"{file}: is not a regular file (a device, FIFO or socket)")
        if info.st_size > max_bytes:
            raise SpecError(f"{file}: {_too_large(info.st_size, max_bytes, what)}")
        chunks = []
        size = 0
        while True:  # read to the end, but never past the limit (the file may grow meanwhile)
            chunk = os.read(fd, max(1, min(1 << 20, max_bytes + 1 - size)))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise SpecError(f"{file}: grew past the {max_bytes:,} bytes allowed for {what} while read")
        return b"".join(chunks)
    except OSError as e:
        raise SpecError(f"{file}: cannot be read ({e.strerror or e})") from None
    finally:
        os.close(fd)


def read_stream(stream: BinaryIO, name: str = "<stdin>", *, max_bytes: int = MAX_SPEC_BYTES) -> str:
    """A spec from a stream (standard input for ``summary -``): at most ``max_bytes`` read, UTF-8.

    Reads ``max_bytes + 1`` bytes at most, so an endless stream (``< /dev/zero``) costs no
    more than a file at the limit; one more byte than allowed is a :class:`SpecError`.
    """
    try:
        data = stream.read(max_bytes + 1)
    except OSError as e:
        raise SpecError(f"{name}: cannot be read ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise SpecError(f"{name}: more than the {max_bytes:,} bytes allowed for a spec file")
    return decode(data, name)


def _too_large(size: int, limit: int, what: str) -> str:
    return f"is {size:,} bytes, more than the {limit:,} bytes allowed for {what}"


def decode(data: bytes, file: str) -> str:
    """UTF-8 text of a file's bytes; :class:`SpecError` at 1:1 naming the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(
            f"file is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
            location=Location(file, 1, 1),
        ) from None


def read_text(path: str | os.PathLike[str], *, what: str = "a spec file", max_bytes: int = MAX_SPEC_BYTES) -> str:
    """:func:`read_bytes` decoded as UTF-8 (line endings kept as written)."""
    return decode(read_bytes(path, what=what, max_bytes=max_bytes), os.fspath(path))
