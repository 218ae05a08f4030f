"""recurring.yml loading and the scheduler stepped with an injected clock (hour, day and DST boundaries)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from solidstack.config import ConfigError
from solidstack.queue import Job
from solidstack.queue.processes.scheduler import Scheduler
from solidstack.queue.recurring import (
    RecurringCommandJob,
    load_recurring_tasks,
    parse_recurring,
    register_tasks,
    validate_tasks,
)
from solidstack.queue.storage import QueueStorage

SEED = Path(__file__).resolve().parents[1] / "seed" / "recurring.yml"  # the seed's file, as the guide writes it
CALLS: list[tuple[object, ...]] = []


@pytest.fixture
def storage(engine_storage: QueueStorage) -> QueueStorage:
    """This module's storage tests run on SQLite and on PostgreSQL."""
    return engine_storage


class MagicLinkCleanupJob(Job):
    def perform(self) -> None:
        pass


class Queue2ReportJob(Job):
    def perform(self, name: str, *, verbose: bool = False) -> None:
        pass


def record_call(*args: object, **kwargs: object) -> str:
    CALLS.append((*args, kwargs))
    return "done"


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def parse(data: dict) -> list:
    return parse_recurring(data, file="config/recurring.yml", env="production")


def test_the_seed_file_loads_unchanged(tmp_path: Path) -> None:
    from solidstack.config import App

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "recurring.yml").write_text(SEED.read_text())
    tasks = load_recurring_tasks(App(tmp_path, "production"))
    assert [(t.key, t.class_name, t.schedule.cron) for t in tasks] == [("magic_link_cleanup", "MagicLinkCleanupJob",
                                                                        "0 * * * *")]
    validate_tasks(tasks)
    assert load_recurring_tasks(App(tmp_path, "development")) == []


def test_args_shapes_and_options() -> None:
    tasks = parse({
        "one": {"class": "Queue2ReportJob", "args": "daily", "schedule": "every day", "queue": "reports",
                "priority": 3, "description": "d"},
        "kw": {"class": "Queue2ReportJob", "args": ["daily", {"verbose": True}], "schedule": "every day"},
        "no_schedule": {"class": "Queue2ReportJob"},
    })
    assert [(t.key, t.args, t.kwargs) for t in tasks] == [("one", ("daily",), {}), ("kw", ("daily",),
                                                                                     {"verbose": True})]
    validate_tasks(tasks)
    job = tasks[0].build_job()
    assert (job.queue_name, job.priority, job.args) == ("reports", 3, ("daily",))


@pytest.mark.parametrize(("entry", "message"), [
    ({"class": "X", "schedule": "every blue moon"}, r"\[production\] bad.schedule: cannot read schedule"),
    ({"schedule": "every hour"}, "needs exactly one of 'class'"),
    ({"class": "X", "command": "a:b", "schedule": "every hour"}, "needs exactly one"),
    ({"command": "os.system('rm -rf /')", "schedule": "every hour"}, "must be a dotted path"),
    ({"class": "X", "schedule": "every hour", "args": [{1: 2}]}, "keyword argument names"),
    ({"class": "X", "schedule": "every hour", "cron": "x"}, "unknown key"),
])
def test_invalid_entries_name_the_task(entry: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse({"bad": entry})
    assert info.value.key is not None and info.value.key.startswith("bad")


@pytest.mark.parametrize(("entry", "message"), [
    ({"class": "NoSuchJob", "schedule": "every hour"}, "unknown job class 'NoSuchJob'"),
    ({"command": "no_such_module_xyz:run", "schedule": "every hour"}, "cannot import module"),
    ({"command": "os.path:nothing_here", "schedule": "every hour"}, "'nothing_here' not found"),
    ({"class": "Queue2ReportJob", "schedule": "every hour", "args": [1, 2, 3]}, "args do not fit"),
    ({"class": "Queue2ReportJob", "schedule": "every hour", "args": [{"colour": 1}]}, "args do not fit"),
])
def test_validation_against_the_code_names_the_task(entry: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        validate_tasks(parse({"bad": entry}), file="config/recurring.yml", env="production")
    assert info.value.key == "bad"


def test_command_runs_from_the_yaml_not_the_database() -> None:
    tasks = parse({"cmd": {"command": f"{__name__}:record_call", "args": [1, {"x": 2}], "schedule": "every hour"}})
    validate_tasks(tasks)
    register_tasks(tasks)
    job = tasks[0].build_job()
    assert isinstance(job, RecurringCommandJob) and job.args == ("cmd",)  # only the key is stored
    assert job.perform_now() == "done"
    assert CALLS[-1] == (1, {"x": 2})


def runs(storage: QueueStorage) -> list[tuple[str, float]]:
    rows = storage.db.query("SELECT task_key, run_at FROM solidstack_recurring_executions ORDER BY run_at, task_key")
    return [(row[0], row[1]) for row in rows]


def step(schedulers: list[Scheduler], start: float, end: float, every: float = 60.0) -> None:
    now = start
    while now <= end:
        for scheduler in schedulers:
            scheduler.poll(now)
        now += every


def test_scheduler_across_hour_day_and_dst_boundaries(storage: QueueStorage) -> None:
    tasks = parse({
        "hourly": {"class": "MagicLinkCleanupJob", "schedule": "every hour"},
        "paris_230": {"class": "MagicLinkCleanupJob", "schedule": "30 2 * * * Europe/Paris"},
        "paris_hourly_12": {"class": "MagicLinkCleanupJob", "schedule": "every hour at minute 12 Europe/Paris"},
    })
    scheduler = Scheduler(storage, tasks)
    # Spring forward (Paris, 2024-03-31 02:00 -> 03:00), across midnight UTC.
    step([scheduler], ts(2024, 3, 30, 22, 30), ts(2024, 3, 31, 3, 30))
    spring = runs(storage)
    assert [at for key, at in spring if key == "hourly"] == [ts(2024, 3, 30, 23), ts(2024, 3, 31, 0),
                                                              ts(2024, 3, 31, 1), ts(2024, 3, 31, 2),
                                                              ts(2024, 3, 31, 3)]
    assert [at for key, at in spring if key == "paris_230"] == [ts(2024, 3, 31, 1)]  # 03:00 CEST, once
    assert [at for key, at in spring if key == "paris_hourly_12"] == [ts(2024, 3, 30, 23, 12) + 3600 * h
                                                                       for h in range(5)]
    # Fall back (Paris, 2024-10-27 03:00 -> 02:00): the daily 02:30 once, the hourly run in both 02:12s.
    fall = Scheduler(storage, tasks)
    step([fall], ts(2024, 10, 26, 21, 30), ts(2024, 10, 27, 3, 0))
    autumn = [(key, at) for key, at in runs(storage) if at > ts(2024, 10, 1)]
    assert [at for key, at in autumn if key == "paris_230"] == [ts(2024, 10, 27, 0, 30)]
    assert [at for key, at in autumn if key == "paris_hourly_12"] == [ts(2024, 10, 26, 22, 12) + 3600 * h
                                                                       for h in range(5)]
    assert storage.counts()["ready"] == len(runs(storage))


def test_two_schedulers_enqueue_each_run_once(storage: QueueStorage) -> None:
    tasks = parse({"tick": {"class": "MagicLinkCleanupJob", "schedule": "every second"}})
    start = ts(2024, 1, 1)
    step([Scheduler(storage, tasks), Scheduler(storage, tasks)], start, start + 10, every=0.25)
    assert [at for _, at in runs(storage)] == [start + n for n in range(1, 11)]
    assert storage.counts()["ready"] == 10


def test_a_late_scheduler_enqueues_the_latest_run_only(storage: QueueStorage) -> None:
    tasks = parse({"hourly": {"class": "MagicLinkCleanupJob", "schedule": "every hour"}})
    scheduler = Scheduler(storage, tasks)
    scheduler.poll(ts(2024, 1, 1, 0, 30))
    scheduler.poll(ts(2024, 1, 1, 5, 30))  # asleep for five hours
    assert [at for _, at in runs(storage)] == [ts(2024, 1, 1, 5)]


def test_static_tasks_are_synced(storage: QueueStorage) -> None:
    first = parse({"a": {"class": "MagicLinkCleanupJob", "schedule": "every hour"},
                   "b": {"class": "MagicLinkCleanupJob", "schedule": "every day"}})
    Scheduler(storage, first).poll(ts(2024, 1, 1))
    Scheduler(storage, first[:1]).poll(ts(2024, 1, 1))
    rows = storage.db.query("SELECT key, schedule, class_name FROM solidstack_recurring_tasks")
    assert [tuple(row) for row in rows] == [("a", "every hour", "MagicLinkCleanupJob")]


def test_tasks_added_at_run_time_are_followed_by_the_scheduler(storage: QueueStorage) -> None:
    from solidstack.queue.config import SchedulerConfig
    from solidstack.queue.processes.scheduler import RecurringStore
    from solidstack.queue.recurring import dynamic_task

    store = RecurringStore(storage)
    static = parse({"hourly": {"class": "MagicLinkCleanupJob", "schedule": "every hour"}})
    scheduler = Scheduler(storage, static, config=SchedulerConfig(dynamic_tasks_enabled=True, polling_interval=5))
    store.save_dynamic(dynamic_task("report", Queue2ReportJob, schedule="every minute", args=("daily",),
                                    kwargs={"verbose": True}, queue="reports"))
    start = ts(2024, 1, 1)
    step([scheduler], start, start + 150, every=5)  # 00:00 .. 00:02:30: runs at 00:01 and 00:02
    assert [(key, at) for key, at in runs(storage)] == [("report", start + 60), ("report", start + 120)]
    job = storage.db.query_one("SELECT class_name, queue_name, arguments FROM solidstack_jobs ORDER BY id")
    assert tuple(job) == ("Queue2ReportJob", "reports", '{"args":["daily"],"kwargs":{"verbose":true}}')
    # Changed in place (scheduled again under the same key), then removed: followed within polling_interval.
    store.save_dynamic(dynamic_task("report", Queue2ReportJob, schedule="every 5 minutes", args=("weekly",)))
    step([scheduler], start + 155, start + 600, every=5)
    assert [at for key, at in runs(storage) if key == "report"][2:] == [start + 300, start + 600]
    assert store.delete_dynamic("report") and not store.delete_dynamic("report")
    step([scheduler], start + 605, start + 3600, every=5)
    assert [at for key, at in runs(storage) if key == "report"][4:] == []
    assert [key for key, at in runs(storage) if at == start + 3600] == ["hourly"]
    # The file owns its keys: a run-time task cannot replace one.
    with pytest.raises(ValueError, match=r"recurring task hourly: config/recurring\.yml has a task of that key"):
        store.save_dynamic(dynamic_task("hourly", Queue2ReportJob, schedule="every minute", args=("x",)))


def test_a_bad_task_added_at_run_time_is_refused_with_its_key(storage: QueueStorage) -> None:
    from solidstack.queue.recurring import dynamic_task

    with pytest.raises(ValueError, match=r"recurring task r1: .*every fortnight"):
        dynamic_task("r1", Queue2ReportJob, schedule="every fortnight", args=("x",))
    with pytest.raises(ValueError, match=r"recurring task r2: .*NoSuchJob"):
        dynamic_task("r2", "NoSuchJob", schedule="every hour")
    with pytest.raises(ValueError, match="recurring task r3: args do not fit"):
        dynamic_task("r3", Queue2ReportJob, schedule="every hour")  # `name` is missing
    with pytest.raises(ValueError, match=r"recurring task r4: .*object"):
        dynamic_task("r4", Queue2ReportJob, schedule="every hour", args=(object(),))


def test_schedule_recurring_task_through_the_app(app) -> None:  # type: ignore[no-untyped-def]
    from solidstack.queue import queue_storage, schedule_recurring_task, unschedule_recurring_task

    task = schedule_recurring_task("nightly_report", Queue2ReportJob, schedule="every day at 3am",
                                   args=["nightly"], description="the nightly report")
    assert task.schedule.cron == "0 3 * * *"
    rows = queue_storage().db.query("SELECT key, schedule, class_name, static, description "
                                    "FROM solidstack_recurring_tasks")
    assert [tuple(row) for row in rows] == [("nightly_report", "every day at 3am", "Queue2ReportJob", 0,
                                             "the nightly report")]
    assert unschedule_recurring_task("nightly_report") is True
    assert unschedule_recurring_task("nightly_report") is False


def test_schedulers_racing_in_threads_enqueue_each_run_once(storage: QueueStorage) -> None:
    """Several schedulers at the same moment, each on its own connection: the unique (task_key, run_at) lets one
    win each run; on PostgreSQL the losers wait for the winner's commit, get no row back and roll back."""
    import threading

    from solidstack.queue.processes.scheduler import RecurringStore

    tasks = parse({"tick": {"class": "MagicLinkCleanupJob", "schedule": "every second"}})
    store = RecurringStore(storage)
    start = ts(2024, 1, 1)
    barrier = threading.Barrier(4)
    won: list[float] = []
    errors: list[BaseException] = []

    def race() -> None:
        try:
            for n in range(1, 21):
                barrier.wait(10)
                if store.enqueue_run(tasks[0], start + n, start + n) is not None:
                    won.append(start + n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(won) == [start + n for n in range(1, 21)]
    assert [at for _, at in runs(storage)] == [start + n for n in range(1, 21)]
    assert storage.counts()["ready"] == 20
