"""``supervisor: {max_restart_failures: N}`` in queue.yml (decision 0007), and the backoff it bounds."""

from __future__ import annotations

import pytest

from solidstack.config import ConfigError
from solidstack.queue.config import QueueConfig, parse_queue_config
from solidstack.queue.processes.supervision import RestartBackoff, RoleSpec


def test_default_and_explicit_limit() -> None:
    assert parse_queue_config({}, file="queue.yml", env="test").max_restart_failures == 10
    config = parse_queue_config({"supervisor": {"max_restart_failures": 3}}, file="queue.yml", env="test")
    assert config.max_restart_failures == 3


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        ({"max_restart_failures": 0}, r"\[test\] supervisor.max_restart_failures: expected a number of at least 1"),
        ({"max_restart_failures": "often"}, r"supervisor.max_restart_failures: expected a whole number"),
        ({"max_restarts": 3}, r"supervisor.max_restarts: unknown key \(known keys here: max_restart_failures\)"),
        (5, r"supervisor: expected a mapping \(max_restart_failures\)"),
    ],
)
def test_bad_values_name_file_environment_and_key(section: object, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as info:
        parse_queue_config({"supervisor": section}, file="config/queue.yml", env="test")
    assert "config/queue.yml" in str(info.value)


def test_backoff_doubles_to_its_cap_and_gives_up_at_the_limit() -> None:
    spec, other = RoleSpec("worker", QueueConfig().workers[0], 0), RoleSpec("dispatcher", None, 0)
    backoff = RestartBackoff(max_failures=10)
    waits = [backoff.failed(spec)[1] for _ in range(9)]
    assert waits == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.failed(other) == (1, 0.25)  # counted per role
    assert backoff.failed(spec) == (10, None)
    backoff.started(spec)
    assert backoff.failed(spec) == (1, 0.25)
