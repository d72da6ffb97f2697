"""The containers between the node's callbacks and its worker thread (cgc_core.service.buffers)."""

import threading
import time

import pytest

from cgc_core.service.buffers import DropOldestQueue, RateLimitedLog, RequestQueue, StampBuffer


def test_drop_oldest_queue_never_exceeds_its_bound_and_counts_drops():
    queue = DropOldestQueue(3)
    for i in range(10):
        queue.put(i)
        assert len(queue) <= 3
    assert queue.dropped == 7 and queue.high_water == 3
    assert [queue.get(), queue.get(), queue.get(), queue.get()] == [7, 8, 9, None]


def test_drop_oldest_queue_get_waits_for_a_put():
    queue = DropOldestQueue(2)
    threading.Timer(0.05, queue.put, args=("frame",)).start()
    started = time.monotonic()
    assert queue.get(timeout=2.0) == "frame"
    assert time.monotonic() - started < 1.0


def test_stamp_buffer_finds_the_nearest_message_within_the_slop():
    buffer = StampBuffer(maxlen=3)
    for stamp in (1.0, 2.0, 3.0, 4.0):
        buffer.put(stamp, f"m{stamp:g}")
    assert buffer.nearest(2.04, 0.05) == "m2"
    assert buffer.nearest(2.5, 0.4) is None  # nearest is 0.5 away
    assert buffer.nearest(1.0, 0.01) is None  # evicted (maxlen 3)
    assert buffer.latest() == "m4" and len(buffer) == 3


def test_stamp_buffer_finds_the_newest_message_at_or_before_a_stamp():
    buffer = StampBuffer(maxlen=4)
    assert buffer.latest_before(5.0) is None
    for stamp in (1.0, 3.0, 2.0, 6.0):  # arrival order is not stamp order
        buffer.put(stamp, f"m{stamp:g}")
    assert buffer.latest_before(5.0) == (3.0, "m3")
    assert buffer.latest_before(6.0) == (6.0, "m6")
    assert buffer.latest_before(0.5) is None


def test_requests_run_on_the_worker_with_results_errors_timeouts_and_a_bound():
    requests = RequestQueue(maxlen=2)
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            requests.run_pending()
            time.sleep(0.01)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert requests.call(lambda: threading.current_thread() is thread, timeout=2.0)
        with pytest.raises(ZeroDivisionError):
            requests.call(lambda: 1 / 0, timeout=2.0)
        with pytest.raises(TimeoutError):
            requests.call(lambda: time.sleep(0.5), timeout=0.1)
        assert requests.timed_out == 1
    finally:
        stop.set()
        thread.join()
    # No worker: two requests wait, the third is refused at once, the waiting ones time out and
    # are skipped when a worker comes.
    ran = []
    waiting = [threading.Thread(target=lambda: pytest.raises(
        TimeoutError, requests.call, lambda: ran.append(1), 0.3)) for _ in range(2)]
    for t in waiting:
        t.start()
    time.sleep(0.1)
    with pytest.raises(BufferError):
        requests.call(lambda: ran.append(1), timeout=1.0)
    assert requests.refused == 1
    for t in waiting:
        t.join()
    assert requests.run_pending() == 0 and ran == []


def test_rate_limited_log_reports_each_kind_once_per_period_with_a_count():
    lines = []
    log = RateLimitedLog(lines.append, period=0.2)
    for _ in range(5):
        log("depth", "depth: negative values")
    log("pose", "pose: NaN")
    assert lines == ["depth: negative values", "pose: NaN"]
    time.sleep(0.25)
    log("depth", "depth: negative values")
    assert lines[-1] == "depth: negative values (4 more like it since the last report)"


def test_rate_limited_log_forgets_the_oldest_kinds_beyond_its_bound():
    lines = []
    log = RateLimitedLog(lines.append, period=60.0, max_kinds=3)
    for i in range(100):  # e.g. failures that quote a different requested name each time
        log(f"service:save_map:{i}", f"save_map: name {i} refused")
    assert len(lines) == 100 and len(log._last) == 3 and len(log._suppressed) <= 3
    log("service:save_map:99", "again")  # the newest kinds are still limited
    assert len(lines) == 100
