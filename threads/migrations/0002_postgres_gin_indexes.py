"""GIN indexes for jsonb containment (metadata.<key>=…, tag=…): PostgreSQL only."""

from django.db import migrations

INDEXES = {
    "thread_metadata_gin": "metadata jsonb_path_ops",
    "thread_tags_gin": "tags jsonb_path_ops",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, column in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON threads_thread USING gin ({column})"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("threads", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
