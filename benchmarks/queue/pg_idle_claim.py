"""What an idle worker's claim costs on PostgreSQL, statement by statement (issue 17, decision 0075).

    .venv/bin/python benchmarks/queue/pg_idle_claim.py [--samples 400] [--gap 0.01] [--explain]

On one fresh database, one bare psycopg connection in autocommit (prepared after 5 uses, as the pool's are), the
way an idle worker sees it: another connection enqueues one job (``enqueue_one``), the claimer waits ``--gap``
seconds (its backend and CPU go idle, as between a worker's wake-ups), then claims it with one of the statements
below; the job is finished (untimed) before the next sample. The statements take turns sample by sample, so a
shared machine's drift falls on all of them alike. Prints each one's p50 / p90 / p99 in ms and the load average.

- ``cycle``: ``finish_and_claim_all`` as the worker sent it before decision 0075 with nothing to finish (an
  empty ``:ids`` array, the ``owned`` / ``marked`` / ``dropped`` branches that find nothing, ``LIMIT`` bound as
  a parameter);
- ``cycle_literal``: the same with ``LIMIT 3`` written into the text (decision 0075);
- ``claim_now``: ``claim_now_all`` with ``LIMIT 3``, the idle worker's statement since decision 0075 (the claim
  alone: no array, no finishing branches; its commit does not wait for the flush, as the cycle's);
- ``select1``: ``SELECT 1`` after the same gap, the floor of any round trip.

``--storage`` adds ``QueueStorage.claim`` on its pool (the statement it picks, the pool, the Python; its connection
idles a whole round between its turns, the bare one only the gap: compare it across trees, not with the rows
above), ``--preload
N`` keeps N finished jobs in the table (as ``preserve_finished_jobs`` does), ``--explain`` prints EXPLAIN (ANALYZE,
BUFFERS) of each claim statement on one ready job once. At the end: how many generic and custom plans the server
made for each statement (a custom plan is planned again at every call).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import systems_pg  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=400, help="per statement")
    parser.add_argument("--gap", type=float, default=0.01, help="seconds idle before each claim")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--storage", action="store_true", help="also QueueStorage.claim (the pool, the Python)")
    parser.add_argument("--preload", type=int, default=0, help="finished jobs in the table first")
    args = parser.parse_args()

    import psycopg

    from solidstack.db import migrate, package_migrations
    from solidstack.db.postgresql import PostgreSQLDatabase
    from solidstack.db.queries import load_queries

    name = systems_pg.create_database()
    try:
        url = systems_pg.dsn(name)
        db = PostgreSQLDatabase(url)
        migrate(db, package_migrations("solidstack.queue", "postgresql"))
        db.close()
        sql = load_queries("solidstack.queue", "postgresql", "pyformat")
        enqueuer = psycopg.connect(url, autocommit=True)
        claimer = psycopg.connect(url, autocommit=True, prepare_threshold=5)
        pid = claimer.execute("INSERT INTO solidstack_processes (kind, name, last_heartbeat_at, pid, hostname, "
                              "created_at) VALUES ('Worker', 'probe', 0, 1, 'probe', 0) RETURNING id").fetchone()[0]
        finish = sql["finish_own_claims"]

        def enqueue() -> None:
            enqueuer.execute(sql["enqueue_one"], {"queue_name": "default", "class_name": "Noop", "arguments": "[]",
                                                  "priority": 0, "active_job_id": "x", "now": time.time(),
                                                  "channel": None})

        def literal(statement: str) -> str:
            return statement.replace("LIMIT %(limit)s", "LIMIT 3")

        cycle = sql["finish_and_claim_all"]
        variants: dict[str, tuple[str, dict[str, object]]] = {
            "cycle": (cycle, {"ids": [], "process_id": pid, "limit": 3, "preserve": True}),
            "cycle_literal": (literal(cycle), {"ids": [], "process_id": pid, "preserve": True}),
            "select1": ("SELECT 1", {}),
        }
        if "claim_now_all" in sql:
            variants["claim_now"] = (literal(sql["claim_now_all"]), {"process_id": pid})
        storage = None
        if args.storage:
            from solidstack.queue import QueueStorage

            storage = QueueStorage(PostgreSQLDatabase(url, listen=False))
            storage.claim(pid, ["*"], 3, time.time())  # the pool opened
            variants["storage"] = ("", {})
        if args.preload:
            enqueuer.execute("INSERT INTO solidstack_jobs (queue_name, class_name, arguments, priority, "
                             "active_job_id, created_at, updated_at, finished_at) SELECT 'default', 'Noop', '[]', "
                             "0, 'x', 0, 0, 0 FROM generate_series(1, %s)", (args.preload,))
        if args.explain:
            for label, (statement, params) in variants.items():
                if label == "select1":
                    continue
                enqueue()
                with claimer.transaction(force_rollback=True):
                    rows = claimer.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement,
                                           {**params, "now": time.time()}).fetchall()
                print(f"-- {label}")
                print("\n".join(row[0] for row in rows))
                claimer.execute("DELETE FROM solidstack_ready_executions")
        times: dict[str, list[float]] = {label: [] for label in variants}
        for i in range(5 + args.samples):
            for label, (statement, params) in variants.items():
                if label != "select1":
                    enqueue()
                time.sleep(args.gap)
                started = time.perf_counter_ns()
                if label == "storage":
                    assert storage is not None
                    claimed = storage.claim(pid, ["*"], 3, time.time())
                    took = (time.perf_counter_ns() - started) / 1e6
                    ids = [row.id for row in claimed]
                else:
                    rows = claimer.execute(statement, {**params, "now": time.time()} if params else None).fetchall()
                    took = (time.perf_counter_ns() - started) / 1e6
                    ids = [row[1] for row in rows if row[0] is False]
                if label != "select1":
                    assert len(ids) == 1, (label, rows)
                    claimer.execute(finish, {"ids": ids, "process_id": pid, "now": time.time()})
                if i >= 5:
                    times[label].append(took)
        print(f"{args.samples} samples each, gap {args.gap * 1000:g} ms, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; ms p50 / p90 / p99:")
        for label, values in times.items():
            print(f"  {label:14s} {pct(values, 0.5):6.3f} {pct(values, 0.9):6.3f} {pct(values, 0.99):6.3f}")
        print("plans (generic / custom) on the claiming connection:")
        for generic, custom, text in claimer.execute(
                "SELECT generic_plans, custom_plans, statement FROM pg_prepared_statements ORDER BY statement"):
            label = ("claim_now" if "owned AS" not in text else "cycle_literal" if "LIMIT 3" in text else "cycle"
                     ) if text.startswith("WITH nosync") else text.split("\n")[0][:30]
            print(f"  {label:14s} {generic} / {custom}")
        enqueuer.close()
        claimer.close()
        if storage is not None:
            storage.db.close()
    finally:
        systems_pg.drop_database(name)


if __name__ == "__main__":
    main()
