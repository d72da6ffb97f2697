"""The small thread-safe containers between a face's callbacks and the service's worker thread.

Callbacks (the node's subscriptions and services) only put messages and requests here; the
worker takes them. Nothing here blocks a callback, and nothing here knows ROS.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cgc_core.data.messages import nearest_stamped


class DropOldestQueue:
    """A bounded FIFO: a put onto a full queue drops the oldest item and counts it."""

    def __init__(self, maxlen: int):
        self._items: collections.deque = collections.deque()
        self._maxlen = maxlen
        self._ready = threading.Condition()
        self.dropped = 0
        self.high_water = 0
        """The longest the queue has been (never more than maxlen)."""

    def put(self, item: Any) -> None:
        with self._ready:
            if len(self._items) >= self._maxlen:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._ready.notify()

    def get(self, timeout: float = 0.0) -> Any | None:
        """The oldest item, waiting up to `timeout` seconds for one; None when none came."""
        with self._ready:
            if not self._items and timeout > 0:
                self._ready.wait(timeout)
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()


class StampBuffer:
    """The last few messages of one topic, found again by stamp (seconds)."""

    def __init__(self, maxlen: int = 30):
        self._items: collections.deque[tuple[float, Any]] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def put(self, stamp: float, message: Any) -> None:
        with self._lock:
            self._items.append((stamp, message))

    def nearest(self, stamp: float, slop: float) -> Any | None:
        """The message whose stamp is nearest `stamp`, if within `slop` seconds; else None."""
        with self._lock:
            items = list(self._items)
        return nearest_stamped(items, stamp, slop)

    def latest_before(self, stamp: float) -> tuple[float, Any] | None:
        """(stamp, message) of the newest message stamped at or before `stamp`, or None."""
        with self._lock:
            earlier = [item for item in self._items if item[0] <= stamp]
        return max(earlier, key=lambda item: item[0], default=None)

    def latest(self) -> Any | None:
        with self._lock:
            return self._items[-1][1] if self._items else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


@dataclass
class Request:
    """A service request waiting for the worker: `run()` is called on the worker thread."""

    run: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    cancelled: bool = False


class RequestQueue:
    """Service requests for the worker: bounded, and each waited for with a timeout."""

    def __init__(self, maxlen: int):
        self._items: collections.deque[Request] = collections.deque()
        self._maxlen = maxlen
        self._lock = threading.Lock()
        self.refused = 0
        self.timed_out = 0

    def call(self, run: Callable[[], Any], timeout: float) -> Any:
        """Run `run` on the worker and return its result (or raise its exception).

        Raises TimeoutError when the worker did not finish it within `timeout` seconds (it is
        then skipped if it had not started), and BufferError when the queue is full.
        """
        request = Request(run)
        with self._lock:
            if len(self._items) >= self._maxlen:
                self.refused += 1
                raise BufferError(f"{self._maxlen} requests already wait for the worker")
            self._items.append(request)
        if not request.done.wait(timeout):
            request.cancelled = True
            with self._lock:
                self.timed_out += 1
            raise TimeoutError(f"the worker did not answer within {timeout:g} s")
        if request.error is not None:
            raise request.error
        return request.result

    def run_pending(self) -> int:
        """On the worker: run every waiting request; returns how many ran."""
        count = 0
        while True:
            with self._lock:
                if not self._items:
                    return count
                request = self._items.popleft()
            if request.cancelled:
                continue
            try:
                request.result = request.run()
            except Exception as error:  # handed to the caller, who answers success=false
                request.error = error
            request.done.set()
            count += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class RateLimitedLog:
    """Log each kind of problem at most once per `period` seconds, with the count since."""

    def __init__(self, log: Callable[[str], None], period: float = 5.0, max_kinds: int = 256):
        self._log = log
        self._period = period
        self._max_kinds = max_kinds
        """Kinds remembered at most: a kind may hold text from a request, and a caller sending
        endless different ones must not grow this without end (the oldest are forgotten)."""
        self._last: dict[str, float] = {}
        self._suppressed: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, kind: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -1e18) < self._period:
                self._suppressed[kind] += 1
                return
            self._last.pop(kind, None)
            self._last[kind] = now  # re-inserted: the dict stays ordered by last report
            while len(self._last) > self._max_kinds:
                oldest = next(iter(self._last))
                del self._last[oldest]
                self._suppressed.pop(oldest, None)
            suppressed, self._suppressed[kind] = self._suppressed[kind], 0
        more = f" ({suppressed} more like it since the last report)" if suppressed else ""
        self._log(f"{message}{more}")
