"""Body canonicalisation for DATA and BDAT: CRLF normalisation and dot-stuffing.

This module owns the wire form of a message body (DESIGN.md, "Wire rules";
SECURITY.md B.10-B.15):

* :class:`DotStuffer` turns a body, fed in chunks of any size, into the DATA
  wire form: every line ends in CRLF (bare CR and bare LF become CRLF, or are
  refused in strict mode), every line that starts with ``.`` gets a second
  ``.``, NUL is refused (unless ``allow_nul``), and :meth:`DotStuffer.finish`
  appends the one and only end-of-data marker.
* :class:`NewlineNormalizer` does the CRLF part alone, for BDAT chunks: its
  output holds only CRLF line ends, so ``len(output)`` is the octet count to
  announce in ``BDAT <n>``.
* :func:`unstuff` inverts a whole DotStuffer output (tests and the test server).

Both classes give the same total output for every way of splitting the same
input into chunks: a CR at the end of one chunk is held back until the next
chunk (or ``finish()``) shows whether an LF follows it.

Speed is a requirement: the work is done with whole-buffer ``bytes`` methods
(``find``, ``replace``, ``join``) and searches that start at a literal octet,
never a per-byte Python loop. Canonical input (the common case: only CRLF
line ends) costs a NUL check, two regular-expression searches for a bare CR
or LF (at about ``bytes.find`` speed) and one ``find`` pass whose pieces are
joined once (no copy at all when no line starts with ``.``); LF-only input
one ``replace`` more, mixed input three. Chunk boundaries cost O(1): the few
bytes around a boundary go into a prefix or are cut off within that same
single join, never by prepending to or re-slicing a large buffer.
``bench/core.py`` measures it against ``bytes.replace``.

This module never imports trio.
"""

from __future__ import annotations

import re

from .errors import InvalidInputError, LocalProtocolError

__all__ = ["DotStuffer", "NewlineNormalizer", "unstuff"]

_CR = 0x0D
_LF = 0x0A
_DOT = 0x2E
_CRLF = b"\r\n"
_END_MARKER = b".\r\n"
_STUFF_FROM = b"\r\n."
_STUFF_TO = b"\r\n.."
# The find-and-join stuffing path is used while lines starting with "." are
# at least this many octets apart on average (measured: about where a Python
# loop over find() stops beating bytes.replace), after a few matches.
_SPARSE_MIN_SPACING = 2048
_SPARSE_MIN_MATCHES = 32
# A trailing CR has no next octet and does not match: it is held back. The
# lookbehind sees the octet before a search's start, so an LF there counts
# as no CR.
_CR_NOT_BEFORE_LF = re.compile(rb"\r[^\n]")
_LF_NOT_AFTER_CR = re.compile(rb"\n(?<!\r\n)")


class _Canonicaliser:
    """Shared incremental engine: CRLF canonicalisation, optionally dot-stuffing."""

    _stuff: bool = False

    __slots__ = (
        "_allow_nul",
        "_at_bol",
        "_broken",
        "_finished",
        "_held_cr",
        "_normalize",
        "bytes_in",
        "bytes_out",
        "octets",
    )

    def __init__(self, *, normalize_newlines: bool = True, allow_nul: bool = False) -> None:
        self._normalize = normalize_newlines
        self._allow_nul = allow_nul
        # A trailing CR of the last chunk, not yet emitted: it becomes part of
        # a CRLF whatever comes next (the next LF, or an inserted one).
        self._held_cr = False
        # True when the output so far is empty or ends with CRLF (ignoring a
        # held CR): the next input byte starts a line.
        self._at_bol = True
        self._broken = False
        self._finished = False
        #: Octets of caller input consumed so far.
        self.bytes_in = 0
        #: Octets produced so far.
        self.bytes_out = 0
        #: Octets of the canonical body so far: the output without stuffed
        #: dots or the end-of-data marker, the message size of RFC 1870.
        self.octets = 0

    def _check_usable(self) -> None:
        if self._finished:
            raise LocalProtocolError(f"{type(self).__name__} already finished")
        if self._broken:
            raise InvalidInputError(
                f"{type(self).__name__} is unusable after an earlier error; abort the transaction"
            )

    def _fail(self, message: str) -> InvalidInputError:
        self._broken = True
        return InvalidInputError(message)

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Consume the next chunk of the body and return the wire bytes for it.

        Raises :class:`InvalidInputError` for NUL (unless ``allow_nul``) or, in
        strict mode, a bare CR or LF; the object is then unusable.
        """
        self._check_usable()
        if not isinstance(data, bytes):
            data = bytes(data)
        n = len(data)
        if n == 0:
            return b""
        if not self._allow_nul and b"\x00" in data:
            raise self._fail("NUL (0x00) is not allowed in a message body")

        held = self._held_cr
        lead_lf = held and data[0] == _LF
        trail_cr = data[-1] == _CR
        # Canonical: every CR (but a trailing one, held back) is followed by LF
        # and every LF (but a leading one that completes a held CR) is preceded
        # by CR. Two searches that start at a literal octet tell, at about
        # twice the speed of counting CR, LF and CRLF (bench/core.py).
        canonical = (
            _CR_NOT_BEFORE_LF.search(data) is None
            and _LF_NOT_AFTER_CR.search(data, 1 if lead_lf else 0) is None
        )
        bare_held = held and not lead_lf
        if not self._normalize and (bare_held or not canonical):
            raise self._fail(
                "bare CR or LF in the body (normalize_newlines=False only accepts CRLF)"
            )

        # Line-start state at data[0], once a held CR is resolved.
        bol = True if held else self._at_bol
        prefix = b"\r\n" if bare_held else b""
        lo = 0
        if canonical:
            body = data
            if lead_lf:
                # The held CR and data[0] form one CRLF: emit it from the prefix.
                prefix = b"\r\n"
                lo = 1
            hi = n - trail_cr  # the held-back CR is not emitted yet
        else:
            # Bring every line end to a single LF, then LF to CRLF. A leading
            # LF that completes a held CR becomes that CRLF by itself.
            if b"\r" in data:
                body = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                body = body.replace(b"\n", b"\r\n")
                # A trailing CR became a CRLF at the end: hold it back instead.
                hi = len(body) - 2 if trail_cr else len(body)
            else:
                body = data.replace(b"\n", b"\r\n")
                hi = len(body)
        stuff = self._stuff
        self.octets += len(prefix) + hi - lo
        if stuff and bol and lo < n and data[lo] == _DOT:
            prefix += b"."

        # While a CR is held, _at_bol is not used: the held CR always ends a line.
        if not trail_cr:
            self._at_bol = data[-1] == _LF
        self._held_cr = trail_cr
        self.bytes_in += n

        out = _assemble(prefix, body, lo, hi, stuff)
        self.bytes_out += len(out)
        return out

    def feed_wire_safe(self, data: bytes) -> bytes:
        """`feed` for a chunk whose producer vouches that it is already wire-safe.

        The promise: ``data`` holds no NUL, every CR or LF in it belongs to a
        CRLF pair within it, and no CRLF in it is followed by ``.``.
        `trio_smtp.mime` keeps it for its base64 lines, built from the base64
        alphabet (which holds none of those octets) and joined with CRLF by
        the composer itself; nothing a caller passes in can break it. Only the
        edges are then checked here, since they depend on what came before: a
        leading ``.`` at the start of a line is stuffed, and a chunk that would
        complete a held CR, or ends in CR, takes the full `feed` path. The
        output and the state afterwards are those `feed` gives, at O(1) cost
        instead of five passes over the chunk (the composer's share of
        ``bench/stream.py``).
        """
        n = len(data)
        if n == 0 or self._held_cr or data[0] == _LF or data[-1] == _CR:
            return self.feed(data)
        self._check_usable()
        self.bytes_in += n
        self.octets += n
        if self._stuff and self._at_bol and data[0] == _DOT:
            data = b"." + data
        self._at_bol = data[-1] == _LF
        self.bytes_out += len(data)
        return data

    def _finish_newline(self) -> bytes:
        if not self._held_cr:
            return b""
        if not self._normalize:
            raise self._fail(
                "bare CR at the end of the body (normalize_newlines=False only accepts CRLF)"
            )
        self._held_cr = False
        self._at_bol = True
        self.octets += 2
        return _CRLF


class DotStuffer(_Canonicaliser):
    """Incremental dot-stuffer for the DATA body.

    Feed the body in chunks of any size; send what :meth:`feed` returns, then
    what :meth:`finish` returns (the end-of-data marker). The concatenated
    output is the same for every chunking of the same input.

    ``normalize_newlines=True`` (the default) turns bare CR and bare LF into
    CRLF, as CPython's smtplib does; ``False`` refuses them ("strict mode").
    ``allow_nul=True`` passes NUL through unchanged instead of refusing it.
    Only use it with a peer known to keep NUL intact: a server that strips
    NUL would read ``CRLF NUL . CRLF`` as the end of data (SECURITY.md B.11).

    After an :class:`InvalidInputError` the stuffer is unusable: the caller
    must abort the transaction and never send an end-of-data marker.
    """

    _stuff = True
    __slots__ = ()

    def finish(self) -> bytes:
        """Return the end of the wire body: a final CRLF if needed, then ``.\\r\\n``."""
        self._check_usable()
        out = self._finish_newline()
        if not self._at_bol:
            out += _CRLF
            self.octets += 2
        out += _END_MARKER
        self._finished = True
        self.bytes_out += len(out)
        return out


class NewlineNormalizer(_Canonicaliser):
    """Incremental CRLF canonicaliser for BDAT chunks (no dot-stuffing, no end marker).

    Every line end of the output is CRLF, so ``len()`` of each returned chunk
    is its exact BDAT octet count (RFC 3030 3; SECURITY.md B.15). Options and
    error behaviour are those of :class:`DotStuffer`.
    """

    __slots__ = ()

    def finish(self) -> bytes:
        """Flush a held-back trailing CR as CRLF; adds nothing else."""
        self._check_usable()
        out = self._finish_newline()
        self._finished = True
        self.bytes_out += len(out)
        return out


def _assemble(prefix: bytes, body: bytes, lo: int, hi: int, stuff: bool) -> bytes:
    """Return ``prefix + body[lo:hi]``, with a dot added after every CRLF "." if ``stuff``.

    ``body`` only holds CRLF line ends. At most one copy is made, none when
    there is nothing to add or cut. Where the lines that start with "." are
    sparse (the usual case), they are found with ``find`` and the pieces joined
    once, which beats ``bytes.replace`` (a counting pass, a finding pass, then
    the copy); where they are dense, ``bytes.replace`` takes over.
    """
    i = body.find(_STUFF_FROM, lo, hi) if stuff else -1
    if i < 0:
        if not prefix and lo == 0 and hi == len(body):
            return body
        with memoryview(body) as view:
            return b"".join((prefix, view[lo:hi]))
    find = body.find
    pieces: list[bytes | memoryview] = [prefix]
    append = pieces.append
    matches = 0
    start = lo
    with memoryview(body) as view:
        while i >= 0:
            matches += 1
            if matches > _SPARSE_MIN_MATCHES and i - lo < matches * _SPARSE_MIN_SPACING:
                # Dense: hand the rest to bytes.replace.
                if start - lo < (hi - lo) >> 3:
                    # Little done so far: redo it all in one replace.
                    stuffed = body.replace(_STUFF_FROM, _STUFF_TO)
                    if not prefix and lo == 0 and hi == len(body):
                        return stuffed
                    with memoryview(stuffed) as whole:
                        # Dots are only ever added after position 1, and the
                        # held-back tail (past hi) never contains a match.
                        return b"".join((prefix, whole[lo : len(stuffed) - (len(body) - hi)]))
                append(body[start:hi].replace(_STUFF_FROM, _STUFF_TO))
                return b"".join(pieces)
            # This piece ends with the dot and the next one starts with it again.
            append(view[start : i + 3])
            start = i + 2
            i = find(_STUFF_FROM, i + 3, hi)
        append(view[start:hi])
        return b"".join(pieces)


def unstuff(wire: bytes) -> bytes:
    """Inverse of stuffing a whole body.

    Takes :class:`DotStuffer` output including the final ``.\\r\\n`` marker and
    returns the body, un-stuffed, with the CRLF that ``finish()`` may have
    added kept. Raises :class:`InvalidInputError` if ``wire`` does not end with
    the marker or holds another one before it. For tests and the test server.
    """
    if wire == _END_MARKER:
        return b""
    if not wire.endswith(b"\r\n.\r\n"):
        raise InvalidInputError("wire body does not end with the end-of-data marker")
    body = wire[:-3]
    if wire.startswith(_END_MARKER) or (b"\r\n.\r\n" in body):
        raise InvalidInputError("wire body holds an end-of-data marker before its end")
    if body.startswith(b"."):
        body = body[1:]
    return body.replace(b"\r\n.", b"\r\n")
