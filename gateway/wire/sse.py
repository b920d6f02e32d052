"""Server-sent events: a stream's bytes framed into events in linear time, with a cap on how
large one event may grow (pure, no I/O).

An upstream sends its stream in pieces of any size, and a hostile or broken one may never send
the blank line that ends an event. ``EventReader.feed`` looks at each byte a bounded number of
times (every line is found once, from where the last search stopped; a finished event leaves the
buffer from its front, which a ``bytearray`` does without moving the rest), and raises
``EventTooLarge`` as soon as the event being read is larger than the cap, so neither the time
nor the memory an event costs can grow without bound.

Lines end in LF or CRLF; an empty line ends the event; ``event:`` names it, ``data:`` lines are
joined with LF; comments (``:``) and other fields are kept in ``raw`` but not read.
"""

from __future__ import annotations

from dataclasses import dataclass


class EventTooLarge(ValueError):
    """The event being read is larger than the reader's cap (the stream must end here)."""


@dataclass(frozen=True, slots=True)
class Event:
    raw: bytes  # the event as it came, its closing blank line included
    name: bytes  # the ``event:`` field, empty when none
    data: bytes  # the ``data:`` lines, joined with LF


class EventReader:
    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self._buffer = bytearray()
        self._line = 0  # where the line being read starts in the buffer
        self._lines = 0  # lines of the event being read (a comment is a line too)
        self._name = b""
        self._data: list[bytes] = []

    def feed(self, piece: bytes) -> list[Event]:
        """The events that ``piece`` completes, in order."""
        buffer = self._buffer
        if (
            not buffer
            and type(piece) is bytes
            and piece.startswith(b"data:")
            and piece.find(b"\n") == len(piece) - 2
            and piece.endswith(b"\n\n")
        ):
            # Nothing pending and the piece is one whole event of one ``data:`` line, what an
            # upstream's chunk nearly always is: the event the loop below would make.
            return [Event(piece, b"", piece[5:-2].strip())]
        buffer += piece
        events: list[Event] = []
        line = self._line
        while (end := buffer.find(b"\n", line)) >= 0:
            if end > line + 1 or (end == line + 1 and buffer[line] != 13):  # 13: CR
                self._field(line, end)
                line = end + 1
                continue
            event = self._take(end + 1)  # a blank line: the event ends here
            if event is not None:
                events.append(event)
            line = 0
        self._line = line
        if len(buffer) > self.max_event_bytes:
            raise EventTooLarge(f"a stream event is larger than {self.max_event_bytes} bytes")
        return events

    def finish(self) -> list[Event]:
        """At the end of the stream: the last event, when the stream ended without its blank
        line (what is left of an unfinished line counts as a line)."""
        if self._line < len(self._buffer):
            self._field(self._line, len(self._buffer))
        event = self._take(len(self._buffer))
        return [event] if event is not None else []

    def _field(self, start: int, end: int) -> None:
        buffer = self._buffer
        self._lines += 1
        if buffer.startswith(b"data:", start):
            self._data.append(bytes(buffer[start + 5 : end]).strip())
        elif buffer.startswith(b"event:", start):
            self._name = bytes(buffer[start + 6 : end]).strip()

    def _take(self, end: int) -> Event | None:
        """The event that ends at ``end``; None for a blank line with nothing before it."""
        raw = bytes(self._buffer[:end])
        del self._buffer[:end]
        self._line = 0
        lines, name, data = self._lines, self._name, self._data
        self._lines, self._name, self._data = 0, b"", []
        if not lines:
            return None
        return Event(raw, name, b"\n".join(data))
