"""The event trigger's lookup of the thread's previous event always by index (PostgreSQL only).

``threads_event_txid()`` (migration 0005) reads the thread's newest event on every insert. PL/pgSQL
plans that query once per connection and keeps the plan; planned while ``threads_event`` was small
(a new deployment, a test database) the plan was a sequential scan, which every later event of that
connection then paid for: one PATCH cost a scan of the whole table, growing with every event
(PostgreSQL's CPU per PATCH 1.06 → 2.76 ms over six 10-second rounds of `make bench`'s PATCH load,
until an ANALYZE invalidated the plan). With sequential scans off inside the function the plan is
the ``(thread_id, -id)`` index's, whatever the table's size when it was made: one index probe.
"""

from django.db import migrations

FORWARD = "ALTER FUNCTION threads_event_txid() SET enable_seqscan = off"
BACKWARD = "ALTER FUNCTION threads_event_txid() RESET enable_seqscan"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("threads", "0006_event_action_message_deleted")]
    operations = [migrations.RunPython(forward, backward)]
