"""FetchPacing's rule: the busy wait while records come, the idle wait once none came
for a while, the busy wait again at the next record."""

from types import SimpleNamespace

from services.common.kafka import FetchPacing


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def paced(idle_after: float = 5.0, idle_ms: int = 250):
    clock = Clock()
    consumer = SimpleNamespace(_fetcher=SimpleNamespace(_fetch_max_wait_ms=30))
    return FetchPacing(consumer, busy_ms=30, idle_ms=idle_ms, idle_after=idle_after, clock=clock), consumer, clock


def test_the_wait_stays_short_until_nothing_came_for_idle_after_seconds():
    pacing, consumer, clock = paced()
    clock.now += 4.9
    pacing.saw(0)
    assert consumer._fetcher._fetch_max_wait_ms == 30
    clock.now += 0.1
    pacing.saw(0)
    assert consumer._fetcher._fetch_max_wait_ms == 250


def test_a_record_brings_the_short_wait_back_and_restarts_the_quiet_count():
    pacing, consumer, clock = paced()
    clock.now += 6
    pacing.saw(0)
    pacing.saw(3)
    assert consumer._fetcher._fetch_max_wait_ms == 30
    clock.now += 4
    pacing.saw(0)
    assert consumer._fetcher._fetch_max_wait_ms == 30  # 4 s since the records, not 10 since the start


def test_an_idle_wait_below_the_busy_one_is_the_busy_one():
    pacing, consumer, clock = paced(idle_ms=10)
    clock.now += 60
    pacing.saw(0)
    assert consumer._fetcher._fetch_max_wait_ms == 30


def test_a_consumer_not_started_yet_is_left_alone_and_paced_once_it_is():
    clock = Clock()
    consumer = SimpleNamespace()
    pacing = FetchPacing(consumer, busy_ms=30, idle_ms=250, idle_after=1, clock=clock)
    clock.now += 2
    pacing.saw(0)  # no fetcher before start: nothing to change, and no error
    consumer._fetcher = SimpleNamespace(_fetch_max_wait_ms=30)
    pacing.saw(0)
    assert consumer._fetcher._fetch_max_wait_ms == 250
