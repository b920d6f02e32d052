"""An fsync'd, append-only outbox file in the data directory, and its sealed twin being delivered.

    append(lines) ── <data dir>/<name>.jsonl, written, flushed and fsync'd before it returns
    seal()        ── the file becomes <name>.delivering.jsonl (renamed, the directory fsync'd);
                     a new, empty file takes the appends meanwhile
    delivered()   ── the sealed file is removed

Shared by the spend outbox (``spend.py``) and the access events' (``sink_events.py``); each says
what a line is. A process that died mid-append leaves a half-written last line: it is cut when
the file is opened, so new lines start clean. An append that fails (disk full, read-only) is cut
back too, as far as the disk lets it, and the caller keeps what it did not write. Calls are not
locked here: each owner holds its own lock around them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("sealgate.outbox")

# How far back from the end a torn last line is looked for: longer than any line written.
TAIL_BYTES = 65536


class OutboxFile:
    def __init__(self, directory: Path, name: str, sealed_name: str) -> None:
        self._directory = directory
        self.path = directory / name
        self.sealed_path = directory / sealed_name
        self.sealed_bytes = self.sealed_path.stat().st_size if self.sealed_path.exists() else 0
        self.file_bytes = 0
        self._file = self._open()
        self._repair_tail()

    @property
    def undelivered_bytes(self) -> int:
        return self.file_bytes + self.sealed_bytes

    def append(self, data: bytes) -> None:
        """Durable when it returns; OSError when the disk did not take it (nothing of it kept)."""
        try:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError:
            with contextlib.suppress(OSError):  # no half line for the next append to follow
                self._file.truncate(self.file_bytes)
            raise
        self.file_bytes += len(data)

    def seal(self) -> None:
        """The current file becomes the one being delivered; a new, empty one takes appends."""
        self._file.close()
        os.replace(self.path, self.sealed_path)
        self.sealed_bytes, self.file_bytes = self.file_bytes, 0
        self._file = self._open()
        directory = os.open(self._directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the new file's name survives a power loss too
        finally:
            os.close(directory)

    def sealed_lines(self) -> Iterator[bytes]:
        with self.sealed_path.open("rb") as lines:
            yield from lines

    def delivered(self) -> None:
        """The sealed file's lines are all in the database: it goes."""
        self.sealed_path.unlink(missing_ok=True)
        self.sealed_bytes = 0

    def close(self) -> None:
        self._file.close()

    def _open(self) -> Any:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a+b")

    def _repair_tail(self) -> None:
        """Cut a half-written last line (the process died mid-append) so new lines start clean."""
        size = self._file.seek(0, os.SEEK_END)
        if size == 0:
            return
        self._file.seek(max(0, size - TAIL_BYTES))
        tail = self._file.read()
        if tail.endswith(b"\n"):
            self.file_bytes = size
            return
        cut = tail.rfind(b"\n")
        keep = size - len(tail) + cut + 1 if cut >= 0 else 0
        log.warning(
            "half-written outbox line dropped",
            extra={"sg_file": self.path.name, "sg_bytes": size - keep},
        )
        self._file.truncate(keep)
        self.file_bytes = keep
