"""Rising articles: readers at 3x the page's own average over the window, at least 5."""

from __future__ import annotations

from portalpulse.rising import RisingTracker

WINDOW = 900.0


def feed(tracker: RisingTracker, start: float, seconds: int, readers: dict[str, int]):  # type: ignore[no-untyped-def]
    """One tick a second; the last tick's answer."""
    rising = []
    for t in range(seconds):
        rising = tracker.observe(start + t, readers)
    return rising


def test_a_page_that_triples_its_average_rises_and_a_steady_one_does_not() -> None:
    tracker = RisingTracker(WINDOW)
    feed(tracker, 0, 600, {"/steady": 12, "/quiet": 1})
    rising = tracker.observe(600, {"/steady": 12, "/quiet": 7})
    assert [(p.path, p.readers) for p in rising] == [("/quiet", 7)]
    assert 0.9 < rising[0].average < 1.1


def test_fewer_than_five_readers_never_rise() -> None:
    tracker = RisingTracker(WINDOW)
    feed(tracker, 0, 600, {"/a": 1})
    assert tracker.observe(600, {"/a": 4}) == []
    assert [p.path for p in tracker.observe(601, {"/a": 5})] == ["/a"]


def test_a_new_page_with_readers_rises_once_the_tracker_has_watched_a_while() -> None:
    tracker = RisingTracker(WINDOW)
    # Just started: no average is known yet, so nothing is marked (a restart
    # does not make every busy page look rising).
    assert feed(tracker, 0, 60, {"/busy": 40}) == []
    feed(tracker, 60, 300, {"/busy": 40})
    assert [p.path for p in tracker.observe(360, {"/busy": 40, "/breaking": 9})] == ["/breaking"]


def test_a_page_stops_rising_when_its_new_level_becomes_its_average() -> None:
    tracker = RisingTracker(WINDOW)
    feed(tracker, 0, 900, {"/a": 2})
    assert feed(tracker, 900, 60, {"/a": 10}) != []
    assert feed(tracker, 960, 900, {"/a": 10}) == []


def test_old_readers_leave_the_window() -> None:
    tracker = RisingTracker(WINDOW)
    feed(tracker, 0, 900, {"/a": 10})
    feed(tracker, 900, 1000, {"/other": 1})  # /a unread for longer than the window
    assert [p.path for p in tracker.observe(1900, {"/a": 6, "/other": 1})] == ["/a"]


def test_pages_kept_are_bounded() -> None:
    tracker = RisingTracker(WINDOW, max_pages=10)
    for i in range(50):
        tracker.observe(float(i), {f"/p{i}": 3})
    assert tracker.pages_kept == 10


def test_holding_the_same_readers_answers_as_observing_them() -> None:
    """A quiet tick (`hold`: the readers of the last `observe`) leaves the tracker
    where observing the same readers would, also across bucket turns; and a page
    that rises after a hold rises in both."""
    for readers in ({"/a": 2, "/b": 1}, {"/a": 6, "/b": 1}):
        observed, held = RisingTracker(WINDOW), RisingTracker(WINDOW)
        for t in range(0, 700, 3):
            assert observed.observe(t, readers) == (
                held.observe(t, readers) if t % 90 == 0 else held.hold(t)
            )
        then = {"/a": readers["/a"], "/b": 9}
        assert observed.observe(700, then) == held.observe(700, then)
        assert [p.path for p in held.observe(701, then)] == ["/b"]
