"""Server-side prepared statements for the hot paths' fixed SQL: planned once per connection, not per call.

psycopg2 sends every statement as text, so PostgreSQL parses and plans it on every call. For the HPO point
verbs' one-statement queries planning cost more than running them (pg_stat_statements over
bench/hpo_service.py: the report statement 0.37 ms to plan and 0.25 ms to run, the token-and-study lookup
0.22 and 0.04 ms). A statement here is sent as ``PREPARE`` once per database connection and then called by
``EXECUTE name(values)``; PostgreSQL switches to a generic plan after five calls when it is no worse than
the custom ones, so later calls skip planning.

Prepared statements belong to the server session, not to a transaction (a rollback keeps them), so a
connection remembers which it holds for as long as it lives; a new connection (Django's ``CONN_MAX_AGE``, a
health check that failed, a restarted server) starts with none. Behind a pooler that hands one client's
statements to other server sessions (PgBouncer in transaction mode before 1.21) set
``IDDS_DB_PREPARED_STATEMENTS=false``. Other databases run the SQL as it is.
"""

from __future__ import annotations

import re
import weakref

from django.conf import settings
from django.db import connection

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
#: The names prepared on each raw (DB-API) connection; an entry goes with its connection.
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class PreparedStatement:
    """One SQL text with ``%(name)s`` parameters, run as a prepared statement on PostgreSQL."""

    def __init__(self, name: str, sql: str) -> None:
        self.name = name
        self.sql = sql
        names: list[str] = []
        for found in _PLACEHOLDER.finditer(sql):
            if found.group(1) not in names:
                names.append(found.group(1))
        positional = _PLACEHOLDER.sub(lambda found: f"${names.index(found.group(1)) + 1}", sql)
        self._prepare = f"PREPARE {name} AS {positional}"
        self._execute = f"EXECUTE {name}({', '.join(f'%({param})s' for param in names)})"

    def sql_for_call(self) -> str:
        """The SQL to run with the parameters on this thread's connection, preparing it there first if needed."""
        if connection.vendor != "postgresql" or not settings.IDDS_DB_PREPARED_STATEMENTS:
            return self.sql
        # What a cursor does first: drop a connection that failed its health check, then connect. The raw
        # connection read next is then the one the caller's statement will run on.
        connection.close_if_health_check_failed()
        connection.ensure_connection()
        prepared = _PREPARED.setdefault(connection.connection, set())
        if self.name not in prepared:
            with connection.cursor() as cursor:
                cursor.execute(self._prepare)
            prepared.add(self.name)
        return self._execute
