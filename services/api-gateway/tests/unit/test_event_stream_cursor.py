"""The event stream's cursor: every event once, late commits caught, bursts paged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api_gateway.routes.event_stream import OVERLAP, StreamCursor, sse

OPENED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def item(event_id: str, seconds: float) -> dict[str, str]:
    created = OPENED + timedelta(seconds=seconds)
    return {"id": event_id, "type": "collect.payment.completed",
            "created_at": created.isoformat(), "body": "{}", "signature": "t=1,v1=x"}  # fmt: skip


def test_the_stream_starts_at_its_opening_not_in_the_past() -> None:
    assert StreamCursor(OPENED).since() == OPENED


def test_an_event_already_sent_is_not_sent_again() -> None:
    cursor = StreamCursor(OPENED)
    assert [i["id"] for i in cursor.take_new([item("a", 1), item("b", 2)])] == ["a", "b"]
    assert [i["id"] for i in cursor.take_new([item("a", 1), item("b", 2), item("c", 3)])] == ["c"]


def test_a_late_commit_with_an_older_timestamp_is_still_asked_for_and_sent() -> None:
    cursor = StreamCursor(OPENED)
    cursor.take_new([item("a", 30), item("b", 31)])
    assert cursor.since() == OPENED + timedelta(seconds=31) - OVERLAP
    late = item("late", 29)  # its transaction began before b's but committed after
    assert [i["id"] for i in cursor.take_new([late, item("b", 31)])] == ["late"]


def test_a_burst_larger_than_a_page_moves_forward_without_the_overlap() -> None:
    cursor = StreamCursor(OPENED)
    cursor.take_new([item(f"e{n}", 40 + n / 100) for n in range(100)])
    cursor.behind = True
    assert cursor.since() == OPENED + timedelta(seconds=40.99)


def test_the_sse_frame_names_the_event_and_carries_the_json_item() -> None:
    frame = sse(item("evt-1", 1)).decode()
    assert frame.startswith("id: evt-1\nevent: collect.payment.completed\ndata: {")
    assert frame.endswith("\n\n") and frame.count("\n") == 4
