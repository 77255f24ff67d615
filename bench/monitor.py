"""Monitor speed: 10^3 requests and 10^6 contents in PostgreSQL, every page and its JSON twin timed.

    python3 bench/monitor.py [--repeat 30] [--keep]

Loads the data set with set-based SQL inside PostgreSQL (``generate_series``: no row crosses the
wire, faster still than the COPY of ``requests_app/services/bulk.py``): 1,000 requests, each with a
transform, a processing, an input and an output collection with their counters, one 100,000-file
dataset and 999 datasets of 901 files, events and ``file_stagein`` messages, and an active-learning loop
of 100 iterations of 10 parameter sets (1,001,099 contents).
Then renders each page in-process through Django's test client (the full middleware, template
and database path, without a network hop) ``--repeat`` times after one warm-up, and prints the
per-page figures; the last line is JSON with ``p50_ms`` / ``p95_ms`` per page. Goal: p95 <= 200 ms.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._harness import bench_env, reset_database  # noqa: E402

BIG_FILES = 100_000
SMALL_FILES = 901
REQUESTS = 1_000
AL_ITERATIONS = 100
AL_BATCH = 10
GOAL_P95_MS = 200.0

LOAD_SQL = [
    # Requests: a mix of statuses and types over the last 30 days.
    f"""
    INSERT INTO requests_app_request (scope, name, requester, request_type, transform_tag, workload_id, priority,
        lifetime, status, request_metadata, processing_metadata, created_at, updated_at)
    SELECT 'mc' || (g % 5), 'dataset.' || g, 'user' || (g % 17), CASE WHEN g % 10 = 0 THEN 4 ELSE 2 END, '',
        100000 + g, 0, 30, (ARRAY[2, 3, 3, 3, 4, 5, 9, 23])[1 + g % 8], '{{}}', '{{}}',
        now() - (g % 30) * interval '1 day', now() - (g % 30) * interval '1 day' + interval '1 hour'
    FROM generate_series(1, {REQUESTS}) AS g
    """,
    """
    INSERT INTO requests_app_transform (request_id, transform_type, transform_tag, workload_id, priority, status,
        transform_metadata, retries, created_at, updated_at)
    SELECT id, request_type, '', workload_id, 0, status,
        jsonb_build_object('source', 'TAPE_' || (id % 4), 'destination', 'DISK'), 0, created_at, updated_at
    FROM requests_app_request
    """,
    """
    INSERT INTO requests_app_processing (transform_id, request_id, status, external_id, processing_metadata,
        claimed_by, poll_period, poll_count, retries, created_at, updated_at)
    SELECT t.id, t.request_id, CASE WHEN t.status = 2 THEN 3 ELSE 4 END, 'rule-' || t.id,
        CASE WHEN t.id % 50 = 0 THEN jsonb_build_object('stuck_count', 3,
            'rules', jsonb_build_array(jsonb_build_object('rule_ids', jsonb_build_array('r' || t.id)),
                                       jsonb_build_object('rule_ids', jsonb_build_array('r' || t.id || 'b'))))
        ELSE '{}'::jsonb END,
        '', 1.0, 10, 0, t.created_at, t.updated_at
    FROM requests_app_transform t
    """,
    # Input (0) and output (1) collections with their counters (the big dataset is request 1's).
    f"""
    INSERT INTO requests_app_collection (transform_id, request_id, relation_type, coll_type, scope, name, status,
        total_files, processed_files, failed_files, bytes, processed_bytes, coll_metadata, created_at, updated_at)
    SELECT t.id, t.request_id, rel, 1, 'mc', 'dataset.' || t.request_id || CASE WHEN rel = 1 THEN '.out' ELSE '' END,
        CASE WHEN t.status = 3 THEN 4 ELSE 3 END, n, n / 2, 0, n::bigint * 1000000, (n / 2)::bigint * 1000000,
        '{{}}', t.created_at, t.updated_at
    FROM requests_app_transform t
    CROSS JOIN (VALUES (0), (1)) AS r(rel)
    CROSS JOIN LATERAL (SELECT CASE WHEN t.request_id = (SELECT min(id) FROM requests_app_request)
                                    THEN {BIG_FILES} ELSE {SMALL_FILES} END AS n) AS sizes
    """,
    # Contents of every input collection: the first half Available, the rest New.
    """
    INSERT INTO requests_app_content (collection_id, scope, name, content_type, status, bytes, adler32, details,
        retries, status_changed_at, created_at, updated_at)
    SELECT c.id, 'mc', c.name || '.file' || lpad(g::text, 6, '0'), 0,
        CASE WHEN g <= c.total_files / 2 THEN 2 ELSE 0 END, 1000000, '', '{}', 0,
        c.created_at, c.created_at, c.created_at
    FROM requests_app_collection c
    CROSS JOIN LATERAL generate_series(1, c.total_files) AS g
    WHERE c.relation_type = 0
    ORDER BY c.id, g
    """,
    """
    INSERT INTO requests_app_event (entity, entity_id, request_id, old_status, new_status, reason, actor, created_at)
    SELECT 'request', r.id, r.id, s.old, s.new, 'bench', 'bench',
        r.created_at + coalesce(s.old, 0) * interval '1 minute'
    FROM requests_app_request r CROSS JOIN (VALUES (NULL::int, 0), (0, 2), (2, 3)) AS s(old, new)
    """,
    """
    INSERT INTO requests_app_message (msg_id, msg_type, status, request_id, transform_id, workload_id, num_contents,
        body, attempts, last_error, delivered_to, created_at, updated_at)
    SELECT 'bench-' || t.id || '-' || g, 'file_stagein', 2, t.request_id, t.id, t.workload_id, 10, '{}', 1, '', '[]',
        now() - g * interval '5 minutes', now()
    FROM requests_app_transform t CROSS JOIN generate_series(1, 10) AS g
    """,
    # One active-learning loop of 100 iterations of 10 parameter sets (1,000 contents), a decision per batch.
    f"""
    WITH r AS (
        INSERT INTO requests_app_request (scope, name, requester, request_type, transform_tag, workload_id, priority,
            lifetime, status, request_metadata, processing_metadata, created_at, updated_at)
        VALUES ('al', 'al.scan', 'user1', 3, '', 999999, 0, 30, 3, '{{}}', '{{}}', now() - interval '1 day', now())
        RETURNING id, created_at
    ), t AS (
        INSERT INTO requests_app_transform (request_id, transform_type, transform_tag, workload_id, priority, status,
            transform_metadata, retries, created_at, updated_at)
        SELECT id, 3, '', 999999, 0, 3, '{{}}', 0, created_at, created_at FROM r
        RETURNING id, request_id, created_at
    ), c AS (
        INSERT INTO requests_app_collection (transform_id, request_id, relation_type, coll_type, scope, name, status,
            total_files, processed_files, failed_files, bytes, processed_bytes, coll_metadata, created_at, updated_at)
        SELECT id, request_id, 1, 1, 'al', 'al.scan.sets', 3, {AL_ITERATIONS * AL_BATCH},
            {AL_ITERATIONS * AL_BATCH - AL_BATCH}, 0, 0, 0, '{{}}', created_at, created_at FROM t
        RETURNING id, transform_id, request_id, created_at
    ), l AS (
        INSERT INTO activelearning_loop (transform_id, request_id, status, iteration, failed_steps, stop_reason,
            last_decision, started_at)
        SELECT transform_id, request_id, 'running', {AL_ITERATIONS}, 0, '', '{{"x": 1.0}}', created_at FROM c
        RETURNING transform_id
    )
    INSERT INTO requests_app_content (collection_id, scope, name, content_type, status, bytes, adler32, details,
        retries, status_changed_at, created_at, updated_at)
    SELECT c.id, 'al', (g - 1)::text, 0, CASE WHEN g <= {AL_ITERATIONS * AL_BATCH - AL_BATCH} THEN 2 ELSE 0 END,
        0, '', '{{}}', 0, c.created_at, c.created_at + ((g - 1) / {AL_BATCH}) * interval '10 minutes',
        c.created_at
    FROM c CROSS JOIN generate_series(1, {AL_ITERATIONS * AL_BATCH}) AS g
    """,
    f"""
    INSERT INTO activelearning_step (loop_id, number, trigger, status, outcome, input_sha256, input_bytes, program,
        program_sha256, output, output_text, returncode, stopped, error, stdout_tail, stderr_tail, runtime,
        duration_seconds, created_at, started_at, finished_at)
    SELECT l.transform_id, g, 'results', 'done', 'batch', repeat('a', 64), 4000, '{{"callable": "bench"}}',
        repeat('b', 64), (SELECT jsonb_agg(jsonb_build_object('x', g + k * 0.1)) FROM generate_series(0, 9) AS k),
        '', 0, '', '', '', '', 'in-process', 0.3,
        l.started_at + g * interval '10 minutes', l.started_at + g * interval '10 minutes',
        l.started_at + g * interval '10 minutes' + interval '0.3 seconds'
    FROM activelearning_loop l CROSS JOIN generate_series(1, {AL_ITERATIONS - 1}) AS g
    """,
    f"""
    INSERT INTO activelearning_trial (content_id, loop_id, name, iteration, parameters, key, reported, results,
        metrics, reported_at, late, consumed_by_id)
    SELECT ct.id, l.transform_id, ct.name, ct.name::int / {AL_BATCH} + 1,
        jsonb_build_object('x', ct.name::int * 0.1), md5(ct.name), ct.status = 2,
        CASE WHEN ct.status = 2 THEN jsonb_build_object('loss', 1.0 / (1 + ct.name::int)) END,
        CASE WHEN ct.status = 2 THEN jsonb_build_object('loss', 1.0 / (1 + ct.name::int)) ELSE '{{}}' END,
        CASE WHEN ct.status = 2 THEN ct.created_at + interval '5 minutes' END, false, s.id
    FROM requests_app_content ct
    JOIN requests_app_collection c ON c.id = ct.collection_id AND c.name = 'al.scan.sets'
    JOIN activelearning_loop l ON l.transform_id = c.transform_id
    LEFT JOIN activelearning_step s ON s.loop_id = l.transform_id AND s.number = ct.name::int / {AL_BATCH} + 1
    """,
]


def load(connection) -> None:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for statement in LOAD_SQL:
            cursor.execute(statement)
    connection.commit()
    old = connection.connection.autocommit
    connection.connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connection.connection.autocommit = old
    print(f"loaded in {time.perf_counter() - started:.1f} s", flush=True)


def pages() -> list[tuple[str, str]]:
    from requests_app.models import Collection, Content, Request

    big = Request.objects.order_by("id").first()
    big_input = Collection.objects.get(request=big, relation_type=0)
    last_ids = list(Content.objects.filter(collection=big_input).order_by("-id").values_list("id", flat=True)[:30])
    any_file = last_ids[-1]
    hpo = Request.objects.filter(request_type=4).order_by("id").first()
    last = Request.objects.filter(request_type=2).order_by("-id").first()
    al = Request.objects.filter(request_type=3).order_by("id").first()
    return [
        ("home", "/"),
        ("home_filtered", "/?days=30&status=Finished&scope=mc1"),
        ("requests", "/requests/"),
        ("requests_sorted_page_20", "/requests/?days=30&sort=name&dir=asc&n=25&page=20"),
        ("requests_search", "/requests/?days=30&q=dataset.77"),
        ("request_detail", f"/requests/{big.pk}/"),
        ("request_files_last_page", f"/requests/{big.pk}/?after={last_ids[-1] - 1}"),
        ("request_files_status", f"/requests/{big.pk}/?fstatus=New&fn=100"),
        ("request_files_search", f"/requests/{big.pk}/?fq=file09999"),
        # A term in no name: every window of the 100,000-file dataset is read, one page at a time.
        ("request_files_search_none", f"/requests/{big.pk}/?fq=nowhere"),
        ("request_files_search_further", f"/requests/{big.pk}/?fq=nowhere&fafter={big_input.name}.file060000"),
        # The files of the newest request sit at the end of the million contents' ids.
        ("request_detail_last", f"/requests/{last.pk}/"),
        ("file_detail", f"/files/{any_file}/"),
        ("carousel", "/carousel/"),
        ("hpo_list", "/hpo/"),
        ("hpo_request_detail", f"/requests/{hpo.pk}/"),
        ("active_learning", "/active-learning/"),
        ("active_learning_loop", f"/active-learning/{al.pk}/"),
        ("active_learning_iteration", f"/active-learning/{al.pk}/?iteration=50"),
        ("statistics", "/statistics/"),
        ("health", "/health/"),
    ]


def measure(client, url: str, repeat: int) -> dict[str, float]:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="reuse the loaded database of a previous run")
    args = parser.parse_args()
    env = bench_env("monitor", 13)
    if not args.keep:
        reset_database(env)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idds_site.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    if not args.keep:
        load(connection)
    client = Client()
    results: dict[str, dict[str, float]] = {}
    for name, url in pages():
        for suffix, variant in (("", url), ("_json", url + ("&" if "?" in url else "?") + "format=json")):
            figures = measure(client, variant, args.repeat)
            results[name + suffix] = figures
            print(f"{name + suffix:34s} p50 {figures['p50_ms']:7.1f} ms  p95 {figures['p95_ms']:7.1f} ms", flush=True)
    # Without a beat in this benchmark /healthz answers 503, which Django logs at ERROR on every call.
    logging.getLogger("django.request").setLevel(logging.CRITICAL)
    for name, url in (("healthz", "/healthz"), ("metrics", "/metrics")):
        client.get(url)
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        results[name] = {
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[int(len(times) * 0.95)], 1),
        }
        print(f"{name:34s} p50 {results[name]['p50_ms']:7.1f} ms  p95 {results[name]['p95_ms']:7.1f} ms", flush=True)
    over = sorted(name for name, figures in results.items() if figures["p95_ms"] > GOAL_P95_MS)
    print(f"pages over {GOAL_P95_MS:.0f} ms p95: {', '.join(over) or 'none'}", flush=True)
    contents = BIG_FILES + (REQUESTS - 1) * SMALL_FILES + AL_ITERATIONS * AL_BATCH
    print(json.dumps({"benchmark": "monitor", "contents": contents, "pages": results}))


if __name__ == "__main__":
    main()
