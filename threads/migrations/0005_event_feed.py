"""The change feed's order: each event's writing transaction, stamped by a trigger on PostgreSQL.

``txid`` is ``pg_current_xact_id()`` of the transaction that inserts the event, raised to the
thread's previous event's ``txid`` when that is higher: a thread's events then keep their version
order in the feed even when a transaction that began earlier writes its next version. Events
written before this migration keep 0 and come first, in id order. On SQLite ``txid`` stays 0.
"""

from django.db import migrations, models

CREATE = """
CREATE OR REPLACE FUNCTION threads_event_txid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.txid := greatest(
        pg_current_xact_id()::text::bigint,
        coalesce((SELECT e.txid FROM threads_event AS e WHERE e.thread_id = NEW.thread_id
                   ORDER BY e.id DESC LIMIT 1), 0));
    RETURN NEW;
END $$;
CREATE TRIGGER threads_event_txid BEFORE INSERT ON threads_event
    FOR EACH ROW EXECUTE FUNCTION threads_event_txid();
"""
DROP = """
DROP TRIGGER IF EXISTS threads_event_txid ON threads_event;
DROP FUNCTION IF EXISTS threads_event_txid();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("threads", "0004_ops_indexes")]
    operations = [
        migrations.AddField(
            model_name="event", name="txid", field=models.BigIntegerField(db_default=0, editable=False)
        ),
        migrations.AddIndex(
            model_name="event", index=models.Index(fields=["organization", "txid", "id"], name="event_feed")
        ),
        migrations.RunPython(create, drop),
    ]
