"""The fugit-style schedule layer on cronsim: forms, zones, DST, bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from solidstack.queue.recurring.schedule import ScheduleError, parse_schedule


@pytest.mark.parametrize(("text", "cron", "zone"), [
    ("every hour", "0 * * * *", "UTC"),
    ("every 5 minutes", "*/5 * * * *", "UTC"),
    ("every 15s", "*/15 * * * * *", "UTC"),
    ("every second", "* * * * * *", "UTC"),
    ("every day at 9am", "0 9 * * *", "UTC"),
    ("every day at 9am Europe/Paris", "0 9 * * *", "Europe/Paris"),
    ("every weekday at five", "0 5 * * 1,2,3,4,5", "UTC"),
    ("every hour at minute 12", "12 * * * *", "UTC"),
    ("at 5am every day", "0 5 * * *", "UTC"),
    ("every day at 9:30 pm", "30 21 * * *", "UTC"),
    ("every monday at noon", "0 12 * * 1", "UTC"),
    ("every day at 9am and 5pm", "0 9,17 * * *", "UTC"),
    ("every 2 hours", "0 */2 * * *", "UTC"),
    ("every month on day 15 at 8am", "0 8 15 * *", "UTC"),
    ("@hourly", "0 * * * *", "UTC"),
    ("@midnight", "0 0 * * *", "UTC"),
    ("@weekly", "0 0 * * 0", "UTC"),
    ("@monthly", "0 0 1 * *", "UTC"),
    ("@yearly", "0 0 1 1 *", "UTC"),
    ("0 9 L * *", "0 9 L * *", "UTC"),
    ("0 9 * * mon#2", "0 9 * * mon#2", "UTC"),
    ("*/10 * * * * *", "*/10 * * * * *", "UTC"),
    ("0 9 * * * America/New_York", "0 9 * * *", "America/New_York"),
])
def test_forms(text: str, cron: str, zone: str) -> None:
    schedule = parse_schedule(text)
    assert (schedule.cron, schedule.zone) == (cron, zone)


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_next_runs_in_a_time_zone() -> None:
    schedule = parse_schedule("every day at 9am Europe/Paris")
    assert schedule.next_after(ts(2024, 1, 10, 12)) == ts(2024, 1, 11, 8)  # CET = UTC+1
    assert schedule.next_after(ts(2024, 7, 10, 12)) == ts(2024, 7, 11, 7)  # CEST = UTC+2


def test_last_day_and_nth_weekday() -> None:
    assert parse_schedule("0 9 L * *").next_after(ts(2024, 2, 1)) == ts(2024, 2, 29, 9)
    assert parse_schedule("0 9 * * mon#2").next_after(ts(2024, 4, 1)) == ts(2024, 4, 8, 9)


def test_dst_spring_forward_runs_once_after_the_gap() -> None:
    # 2024-03-31 in Paris: 02:00 -> 03:00. A 02:30 run happens at 03:00 local (01:00 UTC), once.
    schedule = parse_schedule("30 2 * * * Europe/Paris")
    assert schedule.runs_between(ts(2024, 3, 30, 12), ts(2024, 4, 1, 12)) == [ts(2024, 3, 31, 1), ts(2024, 4, 1, 0, 30)]


def test_dst_fall_back_runs_a_daily_time_once_and_hourly_twice() -> None:
    # 2024-10-27 in Paris: 03:00 -> 02:00; 02:30 happens twice, the daily run happens once (the first).
    daily = parse_schedule("30 2 * * * Europe/Paris")
    assert daily.runs_between(ts(2024, 10, 26, 12), ts(2024, 10, 27, 12)) == [ts(2024, 10, 27, 0, 30)]
    hourly = parse_schedule("every hour at minute 12 Europe/Paris")
    assert hourly.runs_between(ts(2024, 10, 26, 23, 30), ts(2024, 10, 27, 2, 30)) == [
        ts(2024, 10, 27, 0, 12), ts(2024, 10, 27, 1, 12), ts(2024, 10, 27, 2, 12)]


@pytest.mark.parametrize(("text", "reason"), [
    ("every blue moon", "'blue' after 'every'"),
    ("every 90 seconds", "cannot be written as a cron schedule"),
    ("every hour at 9am", "does not go with 'every hour'"),
    ("0 99 * * *", "not a valid cron expression"),
    ("@reboot", "unknown shortcut"),
    ("", "expected a schedule"),
    ("0 0 30 2 *", "never runs|not a valid"),
    ("every day at 9am Mars/Olympus", "unexpected word|not a time"),
])
def test_bad_schedules_say_why(text: str, reason: str) -> None:
    with pytest.raises(ScheduleError, match=reason):
        parse_schedule(text)


def test_describe_in_words() -> None:
    assert parse_schedule("every day at 9am Europe/Paris").describe() == "At 09:00 every day (Europe/Paris)"
