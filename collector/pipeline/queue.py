"""One sink's bounded queue and its backpressure policy.

The reader thread puts, the sink's worker thread takes. When the queue is
full the policy decides, for each event that does not fit:
- block: the reader waits for room (the kernel ring buffer absorbs the
  difference, then drops and counts); at stop it waits until the shutdown
  deadline at most, then drops (counted as shutdown_timeout);
- drop-newest: the new event is refused (counted as queue_full);
- drop-oldest: the oldest queued event is evicted (counted as queue_full).
A sink that has failed for good takes nothing more (counted as sink_failed).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from collector.pipeline.stats import SinkStats

Event = Any


class SinkQueue:
    """See the module docstring. `stats` is the sink's one set of counters."""

    def __init__(self, capacity: int, policy: str, stats: SinkStats) -> None:
        self.capacity = capacity
        self.policy = policy
        self.stats = stats
        self.cond = threading.Condition()
        self._events: deque[Event] = deque()
        self.draining = False  # no more puts; the worker finishes what is queued
        self.held = False  # the worker took events it has not delivered yet (see settle)
        self._put_deadline = float("inf")
        # how many queued events wake the waiting worker: 1 while it waits for a
        # batch's first event; while it gathers the rest, what the batch still
        # needs, so a storm wakes it once a batch rather than once a poll
        self._wake_at = 1

    # -- the reader's side --------------------------------------------------------------

    def put_many(self, events: list[Event]) -> None:
        """The events of one poll under one lock, as many as there is room for;
        the rest one by one, so the policy applies to each exactly as put() does."""
        st = self.stats
        rest = events
        with self.cond:
            queue = self._events
            room = self.capacity - len(queue)
            if st.failed is None and room > 0:
                fits = events if len(events) <= room else events[:room]
                rest = events[len(fits):]
                before = len(queue)
                queue.extend(fits)
                st.queued += len(fits)
                st.queue_depth = depth = len(queue)
                if before < self._wake_at <= depth:  # only the worker waits for events
                    self.cond.notify_all()
        for event in rest:
            self.put(event)

    def put(self, event: Event) -> None:
        """Queue one event, applying the policy when full."""
        st = self.stats
        with self.cond:
            if st.failed is not None:
                st.dropped["sink_failed"] += 1
                return
            queue = self._events
            if len(queue) >= self.capacity:
                if self.policy == "drop-newest":
                    st.dropped["queue_full"] += 1
                    return
                if self.policy == "drop-oldest":
                    queue.popleft()
                    st.dropped["queue_full"] += 1
                elif not self._wait_for_room():
                    return
            queue.append(event)
            st.queued += 1
            st.queue_depth = depth = len(queue)
            if depth == self._wake_at:
                # only the worker waits for events, for this many (a put()
                # waiting for room is woken by the worker's take): notify_all is
                # a Python-level call, skip it when nobody waits
                self.cond.notify_all()

    def _wait_for_room(self) -> bool:
        """Policy block (lock held): wait; False if the event was dropped instead."""
        st = self.stats
        while len(self._events) >= self.capacity and st.failed is None:
            if time.monotonic() >= self._put_deadline:
                st.dropped["shutdown_timeout"] += 1  # stopping: wait no longer
                return False
            self.cond.wait(0.1)
        if st.failed is not None:
            st.dropped["sink_failed"] += 1
            return False
        return True

    def stop_blocking(self, deadline: float) -> None:
        """Stopping: a put() blocked on a full queue waits until `deadline`
        (time.monotonic()) at most, then drops, counted as shutdown_timeout.
        Without it a stuck sink would hang the reader's last drain, and so the
        stop, for ever."""
        with self.cond:
            self._put_deadline = deadline
            self.cond.notify_all()

    def close_for_puts(self) -> None:
        """Draining: the worker delivers what is queued, then stops."""
        with self.cond:
            self.draining = True
            self.cond.notify_all()

    def wake(self) -> None:
        """Wake the worker (a reopen request, a shutdown deadline)."""
        with self.cond:
            self.cond.notify_all()

    # -- the worker's side --------------------------------------------------------------

    def take(self, most: int, timeout: float, wake_at: int = 1) -> list[Event]:
        """Up to `most` events, waiting up to `timeout` for the first; [] when
        none came (timeout, draining, or woken for another reason).

        `wake_at` > 1 (a batch being gathered): wait, up to `timeout`, until that
        many are queued, then take what is there. Capped at half the queue, so a
        drop policy never drops for want of a take."""
        with self.cond:
            queue = self._events
            want = max(1, min(wake_at, most, self.capacity // 2))
            if len(queue) < want and timeout > 0 and not self.draining:
                self._wake_at = want
                try:
                    self.cond.wait(timeout)
                finally:
                    self._wake_at = 1
            if not queue:
                return []
            if len(queue) <= most:  # all of it, as a storm's poll mostly is: no loop
                events = list(queue)
                queue.clear()
            else:
                events = [queue.popleft() for _ in range(most)]
            self.held = True
            self.stats.queue_depth = len(queue)
            self.cond.notify_all()  # room for a put() blocked on a full queue
        return events

    def settle(self) -> None:
        """The worker delivered (or gave up) everything it took."""
        self.held = False

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing in the worker's hands, not draining: an event
        written now by someone else cannot overtake an earlier one. Only the
        reader puts, so once it sees idle, idle it stays until it puts."""
        return not self._events and not self.held and not self.draining

    def give_back(self, events: list[Event]) -> None:
        """Events taken but not batched go back to the head of the queue, in order."""
        if events:
            with self.cond:
                self._events.extendleft(reversed(events))
                self.stats.queue_depth = len(self._events)

    def clear(self) -> int:
        """Empty the queue (the sink stopped); how many events were in it."""
        with self.cond:
            left = len(self._events)
            self._events.clear()
            self.stats.queue_depth = 0
            self.cond.notify_all()
        return left

    @property
    def empty(self) -> bool:
        return not self._events
