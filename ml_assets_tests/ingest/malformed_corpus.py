"""Malformed CFPB exports seen in the wild, as bytes: the landing loader's regression corpus.

`landed_digests.json` holds what landing these (and the real extracts) produced before landing
streamed: the sha256 of every file written, by path under the landing root.
"""

from __future__ import annotations

from ml_assets.ingest.cfpb_vocabulary import OFFICIAL_HEADER

_HEADER = ",".join(f'"{h}"' if "," in h else h for h in OFFICIAL_HEADER)
_HEADER_WITHOUT_ID = _HEADER.removesuffix(",Complaint ID")


def _row(received: str, complaint_id: str, company: str = "Bank A", narrative: str = "") -> str:
    return (
        f"{received},Mortgage,Conventional fixed mortgage,Loan servicing,,{narrative},,{company},NJ,"
        f"7030,,N/A,Web,{received},Closed with explanation,Yes,No,{complaint_id}"
    )


def _without_id(row: str) -> str:
    return row.rsplit(",", 1)[0]


def _lines(*lines: str, end: str = "\n") -> bytes:
    return (end.join(lines) + end).encode()


def _unclosed_quote_past_the_field_limit() -> bytes:
    # About 2,000 records of 130 bytes: the swallowed field outgrows csv's 128 KiB limit.
    rows = [_row("1/5/2016", str(n)) for n in range(2000)]
    rows[3] = rows[3].replace("Bank A", '"Bank A')
    return _lines(_HEADER, *rows)


CORPUS: dict[str, bytes] = {
    "crlf_and_lost_zip_zeros.csv": _lines(
        _HEADER, _row("7/29/2013", "1"), _row("7/30/2013", "2"), end="\r\n"
    ),
    "bare_cr_line_ends.csv": _lines(
        _HEADER, _row("7/29/2013", "1"), _row("7/29/2013", "2"), end="\r"
    ),
    "byte_order_mark.csv": b"\xef\xbb\xbf" + _lines(_HEADER, _row("2013-07-29", "1")),
    "quoted_newlines.csv": _lines(
        _HEADER,
        _row("7/29/2013", "1", narrative='"Charged twice.\nStill not fixed."'),
        _row("7/29/2013", "2", narrative='"one\r\ntwo, ""quoted"""'),
        _row("7/29/2013", "3"),
    ),
    "unclosed_quote.csv": _lines(
        _HEADER,
        _row("7/29/2013", "1"),
        _row("7/29/2013", "2", company='"Bank A'),
        _row("7/29/2013", "3"),
        _row("7/30/2013", "4"),
        _row("7/29/2013", "5"),
    ),
    "unclosed_quote_past_field_limit.csv": _unclosed_quote_past_the_field_limit(),
    "wrong_field_counts.csv": _lines(
        _HEADER,
        _row("7/29/2013", "1"),
        "7/29/2013,Mortgage,Conventional fixed mortgage",
        _row("7/29/2013", "3") + ",surplus",
        "not a date,Mortgage",
    ),
    "unreadable_dates.csv": _lines(
        _HEADER,
        _row("13/45/2013", "1"),
        _row("", "2"),
        _row("2013-07-29T25:00", "3"),
        _row("2013-07-29T10:00:00", "4"),
        _row("7/29/13", "5"),
    ),
    "blank_lines_and_truncated_end.csv": _HEADER.encode()
    + b"\n\n"
    + _row("7/29/2013", "1").encode()
    + b"\n\n\n"
    + _row("7/29/2013", "2").encode()[:60],
    "without_ids.csv": _lines(
        _HEADER_WITHOUT_ID,
        _without_id(_row("7/29/2013", "x")),
        ",".join(_without_id(_row("7/29/2013", "x")).split(",")[:16]),
        _without_id(_row("7/30/2013", "x")),
        "garbage",
    ),
    "header_only.csv": _lines(_HEADER),
    "many_days.csv": _lines(
        _HEADER, *(_row(f"{1 + n % 12}/{1 + n % 28}/{2012 + n % 5}", str(n)) for n in range(300))
    ),
}
