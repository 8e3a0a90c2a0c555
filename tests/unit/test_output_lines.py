"""Splitting a workflow's output into lines as it comes, each bounded (no process: bytes fed by hand)."""

from __future__ import annotations

from retryq.running.runner import LINE_BYTES, OutputLines


def test_lines_split_across_pieces_come_out_whole() -> None:
    lines = OutputLines()
    assert lines.feed(b"first\r\nsec") == ["first"]
    assert lines.feed(b"ond\n\nthird") == ["second", ""]
    assert lines.end() == "third"
    assert lines.end() is None


def test_a_character_split_across_pieces_is_decoded_whole() -> None:
    lines = OutputLines()
    encoded = "é\n".encode()
    assert lines.feed(encoded[:1]) == []
    assert lines.feed(encoded[1:]) == ["é"]


def test_a_line_longer_than_the_bound_keeps_its_end_and_says_how_much_was_cut() -> None:
    lines = OutputLines()
    for _ in range(100):
        assert lines.feed(b"ab" * 10_000) == []
    [line] = lines.feed(b"THE END\nnext\n")[:1]
    kept = line.split("] ", 1)[1]
    assert line.startswith(f"[{2_000_000 + 7 - len(kept)} bytes cut] ")
    assert len(kept) == LINE_BYTES
    assert kept.endswith("abTHE END")
    assert lines.end() is None


def test_a_cut_never_starts_in_the_middle_of_a_character() -> None:
    lines = OutputLines()
    lines.feed("é".encode() * LINE_BYTES)
    [line] = lines.feed(b"\n")
    assert "\ufffd" not in line
    assert line.split("] ", 1)[1] == "é" * (LINE_BYTES // 2)
