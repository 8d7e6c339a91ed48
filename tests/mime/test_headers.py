"""Header fields the composer writes: they read back exactly through the
standard library's parser, stay within line limits, and refuse injection
(SECURITY 20)."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone
from email.headerregistry import Address

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trio_smtp import InvalidInputError
from trio_smtp.mime import Attachment, compose

from .helpers import REFUSED, assert_no_defects, check_wire, parse, read_all

# Any text a header could carry, except what the composer refuses.
header_text = st.text(st.characters(exclude_characters=REFUSED, codec="utf-8"), max_size=150)
ascii_text = st.text(st.characters(min_codepoint=1, max_codepoint=127, exclude_characters=REFUSED))


async def composed(**kwargs: object) -> bytes:
    kwargs.setdefault("sender", "a@example.com")
    kwargs.setdefault("subject", "s")
    message = compose(**kwargs)  # type: ignore[arg-type]
    async with message:
        data = await read_all(message)
    assert message.length == len(data)
    check_wire(data)
    return data


def header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


@settings(deadline=None)
@given(st.one_of(header_text, ascii_text))
@example("")
@example(" leading and trailing ")
@example("=?utf-8?q?not_an_encoded_word?=")
@example("x" * 2000)
@example("word " * 100)
@example("tab\tseparated\t\twords")
@example("é" * 300)
@example("\U0001f600" * 40)
async def test_subject_reads_back_exactly(subject: str) -> None:
    data = await composed(subject=subject)
    message = parse(data)
    assert message["Subject"] == subject
    assert_no_defects(message)
    for line in header_lines(data):
        if b"=?" in line:
            # RFC 2047 2: lines with encoded-words stay within 76 columns.
            assert len(line) <= 76


def normalised(name: str) -> str:
    """A display name as the composer writes it: whitespace is not significant
    in a phrase, so runs of spaces and tabs become one space."""
    return " ".join(re.split(r"[ \t]+", name.strip(" \t")))


ENCODED_WORDS = re.compile(r"(?:=\?utf-8\?b\?[A-Za-z0-9+/=]*\?=[ ]?)+")


def decode_phrase(raw: str) -> str:
    """RFC 2047 6.2 for the phrases the composer writes (atoms, one quoted
    string, or B encoded-words): whitespace between adjacent encoded-words
    is dropped, everything else is kept."""
    if raw.startswith('"'):
        return re.sub(r"\\(.)", r"\1", raw[1:-1])

    def decode_run(match: re.Match[str]) -> str:
        run = match[0]
        trailing = " " if run.endswith(" ") else ""
        words = re.findall(r"=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=", run)
        return b"".join(base64.b64decode(word) for word in words).decode() + trailing

    return ENCODED_WORDS.sub(decode_run, raw)


def raw_header(data: bytes, name: bytes) -> str:
    for line in re.split(rb"\r\n(?! )", data.split(b"\r\n\r\n", 1)[0]):
        if line.lower().startswith(name.lower() + b": "):
            return line[len(name) + 2 :].replace(b"\r\n", b"").decode("ascii")
    raise AssertionError(f"no {name!r} header")


@settings(deadline=None)
@given(header_text, st.one_of(header_text, ascii_text))
@example("Bob", "")
@example('Bob "the builder" \\o/', "Ann, <ann@x>")
@example("=?utf-8?b?QQ==?=", "  ")
@example("x" * 300, "é" * 100)
@example("A.B. Smith", "O'Brien")
@example("Jürgen von Müller-Lüdenscheidt", "Dr. Ünal")
@example("\x01 \x7f\x9b", "a\tb")
async def test_display_names_read_back_exactly(first: str, second: str) -> None:
    data = await composed(
        sender=(first, "from@example.com"),
        to=[(first, "one@example.org"), "two@example.org", (second, "three@example.org")],
        cc=Address(display_name=second, addr_spec="four@example.org"),
        reply_to=[(second, "reply@example.com")],
    )
    for line in header_lines(data):
        if b"=?" in line:
            assert len(line) <= 76
    # Read as RFC 2047 says, the name is exactly what was given.
    raw_from = raw_header(data, b"From")
    phrase = raw_from.removesuffix(" <from@example.com>").removesuffix("from@example.com")
    assert decode_phrase(phrase) == normalised(first)

    message = parse(data)
    assert_no_defects(message)
    if re.search(rb"\?=\s+=\?", data.split(b"\r\n\r\n", 1)[0]):
        # A run too long for one encoded-word: Python's parser keeps the
        # space between encoded-words that RFC 2047 6.2 drops.
        return
    (sender,) = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (normalised(first), "from@example.com")
    assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [
        (normalised(first), "one@example.org"),
        ("", "two@example.org"),
        (normalised(second), "three@example.org"),
    ]
    assert [(a.display_name, a.addr_spec) for a in message["Cc"].addresses] == [
        (normalised(second), "four@example.org")
    ]
    assert [a.display_name for a in message["Reply-To"].addresses] == [normalised(second)]


async def test_short_non_ascii_names_are_one_encoded_word_between_atoms() -> None:
    data = await composed(sender=("Jürgen von Müller", "j@example.com"))
    assert raw_header(data, b"From") == (
        "=?utf-8?b?SsO8cmdlbg==?= von =?utf-8?b?TcO8bGxlcg==?= <j@example.com>"
    )


@settings(deadline=None)
@given(st.text(st.characters(exclude_characters=REFUSED, codec="utf-8"), min_size=1))
@example("report.pdf")
@example("my report (final).pdf")
@example('quote".txt')
@example("résumé.docx")
@example("x" * 200 + ".bin")
@example("a;b=c.txt")
@example("=?utf-8?b?QQ==?=")
@example("%41.txt")
async def test_filenames_read_back_exactly(filename: str) -> None:
    data = await composed(attachments=[Attachment(b"data", filename=filename)])
    message = parse(data)
    assert_no_defects(message)
    (part,) = [part for part in message.iter_attachments()]
    # get_filename() strips surrounding whitespace; the parameter keeps it.
    assert part["Content-Disposition"].params["filename"] == filename
    assert part["Content-Type"].params["name"] == filename
    assert part.get_filename() == filename.strip()
    assert part.get_payload(decode=True) == b"data"
    for line in header_lines(data.split(b"\r\n--=_", 2)[2]):
        assert len(line) <= 76


@settings(deadline=None)
@given(
    st.from_regex(r"X-[A-Za-z0-9-]{1,40}", fullmatch=True),
    st.one_of(header_text, ascii_text),
)
async def test_extra_headers_read_back_exactly(name: str, value: str) -> None:
    data = await composed(headers={name: value})
    message = parse(data)
    assert message[name] == value


async def test_standard_headers() -> None:
    when = datetime(2024, 2, 29, 13, 5, 9, tzinfo=timezone(timedelta(hours=2)))
    data = await composed(
        sender="a@example.com",
        to="b@example.org",
        date=when,
        message_id="unique.1@example.com",
        text="hi",
    )
    assert data.startswith(
        b"From: a@example.com\r\n"
        b"To: b@example.org\r\n"
        b"Subject: s\r\n"
        b"Date: Thu, 29 Feb 2024 13:05:09 +0200\r\n"
        b"Message-ID: <unique.1@example.com>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: text/plain; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: 7bit\r\n"
        b"\r\n"
        b"hi\r\n"
    )
    message = parse(data)
    assert message["Date"].datetime == when
    assert "Bcc" not in message


async def test_default_date_and_message_id() -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    message = compose(sender=("Ann", "ann@mail.example.com"), subject="s")
    async with message:
        parsed = parse(await read_all(message))
    assert before <= parsed["Date"].datetime <= datetime.now(timezone.utc)
    assert parsed["Message-ID"] == message.message_id
    assert message.message_id.startswith("<") and message.message_id.endswith("@mail.example.com>")
    other = compose(sender="ann@mail.example.com", subject="s")
    await other.aclose()
    assert other.message_id != message.message_id


# -- SECURITY 20 -------------------------------------------------------------------

INJECTIONS = [
    "x\r\nBcc: victim@example.org",
    "x\nBcc: victim@example.org",
    "x\rY",
    "x\x00y",
    # What str.splitlines (and so a Python reader of the decoded value) breaks at.
    "x\x0bBcc: victim@example.org",
    "x\u2028Bcc: victim@example.org",
    "x\x85y",
]


@pytest.mark.parametrize("evil", INJECTIONS)
async def test_sec_20_cr_lf_nul_in_headers_are_refused_at_compose_time(evil: str) -> None:
    attempts: list[dict[str, object]] = [
        {"subject": evil},
        {"sender": (evil, "a@example.com")},
        {"to": [(evil, "b@example.org")]},
        {"cc": [(evil, "b@example.org")]},
        {"reply_to": (evil, "b@example.org")},
        {"headers": {"X-Note": evil}},
        {"headers": {evil: "value"}},
        {"message_id": f"<{evil}@example.com>"},
    ]
    for kwargs in attempts:
        kwargs.setdefault("sender", "a@example.com")
        kwargs.setdefault("subject", "s")
        with pytest.raises(InvalidInputError):
            compose(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        Attachment(b"x", filename=evil)
    with pytest.raises(InvalidInputError):
        Attachment(b"x", content_type=f"text/plain; charset={evil}")
    with pytest.raises(InvalidInputError):
        Attachment(b"x", content_id=evil)


async def test_sec_20_other_control_characters_are_encoded_not_passed_through() -> None:
    # Controls that break no line are encoded, so they never reach the wire raw.
    tricky = "a\x01b\x1bc\x7fd\x9be\tf"
    data = await composed(subject=tricky, sender=(tricky, "a@example.com"))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(32 <= octet < 127 for octet in head.replace(b"\r\n", b""))
    message = parse(data)
    assert message["Subject"] == tricky
    # A tab in a phrase is folding whitespace: it reads back as a space.
    assert message["From"].addresses[0].display_name == tricky.replace("\t", " ")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sender": "not an address"},
        {"sender": "Bob <bob@example.com>"},
        {"sender": "bob"},
        {"sender": "bob@exämple.com"},
        {"sender": 42},
        {"to": ("Bob", "bob@example.org")},  # a bare tuple is a sequence: "Bob" is no address
        {"to": ["a@example.org", ("Bob",)]},
        {"headers": {"Bad Name": "v"}},
        {"headers": {"Colon:": "v"}},
        {"headers": {"": "v"}},
        {"headers": {"Subject": "again"}},
        {"headers": {"content-type": "text/html"}},
        {"headers": {"Bcc": "hidden@example.org"}},
        {"headers": {"X-Surrogate": "\udc80"}},
        {"message_id": "no-at-sign"},
        {"message_id": "<a b@example.com>"},
        {"message_id": "<unbalanced@example.com"},
        {"date": datetime(2024, 1, 1)},  # naive: the zone would be a guess
        {"text": b"bytes"},
        {"attachments": [b"raw"]},
    ],
)
async def test_invalid_input_is_refused_at_compose_time(kwargs: dict[str, object]) -> None:
    kwargs.setdefault("sender", "a@example.com")
    kwargs.setdefault("subject", "s")
    with pytest.raises(InvalidInputError):
        compose(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((b"x",), {"filename": ""}),
        ((b"x",), {"size": 2}),
        ((b"x",), {"content_type": "text"}),
        ((b"x",), {"content_type": "text/plain; charset"}),
        ((b"x",), {"content_type": "multipart/mixed"}),
        ((b"x",), {"content_type": "message/rfc822"}),
        ((b"x",), {"encoding": "quoted-printable"}),  # not text/*
        ((b"x",), {"encoding": "8bit"}),
        ((b"x",), {"content_id": "<a b>"}),
        ((b"x",), {"content_id": "<logo"}),
        ((b"x",), {"content_type": 'text/plain; name="caf\u00e9"'}),  # headers stay ASCII
        ((b"x",), {"size": True}),
        ((42,), {}),
        (("",), {}),
    ],
)
def test_invalid_attachments_are_refused(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with pytest.raises(InvalidInputError):
        Attachment(*args, **kwargs)  # type: ignore[arg-type]


def test_guessed_content_types() -> None:
    assert Attachment(b"", filename="a.pdf").content_type == "application/pdf"
    assert Attachment(b"", filename="a.tar.gz").content_type == "application/gzip"
    # message/rfc822 must not be base64-encoded (RFC 2046 5.2.1).
    assert Attachment(b"", filename="a.eml").content_type == "application/octet-stream"
    assert Attachment(b"").content_type == "application/octet-stream"
    assert Attachment(b"", filename="no-extension").content_type == "application/octet-stream"


async def test_content_type_parameters_are_kept() -> None:
    attachment = Attachment(
        b"a,b\r\n", filename="t.csv", content_type='Text/CSV; charset=utf-8; header="present"'
    )
    data = await composed(attachments=[attachment])
    (part,) = parse(data).iter_attachments()
    assert part.get_content_type() == "text/csv"
    assert part["Content-Type"].params == {"charset": "utf-8", "header": "present", "name": "t.csv"}


async def test_message_id_and_content_id_brackets_are_optional() -> None:
    data = await composed(
        message_id="<given@example.com>",
        attachments=[Attachment(b"x", content_id="<logo@example.com>")],
    )
    message = parse(data)
    assert message["Message-ID"] == "<given@example.com>"
    (part,) = message.iter_attachments()
    assert part["Content-ID"] == "<logo@example.com>"
