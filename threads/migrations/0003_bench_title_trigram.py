"""A trigram index for the list's ``search`` (title contains, case-insensitive): PostgreSQL only.

Django writes ``search`` as ``UPPER(title::text) LIKE UPPER('%…%')``; a GIN trigram index on that
very expression serves it, so a rare word no longer walks the organization's whole list, and
ANALYZE keeps statistics on the expression, so the planner knows a common word from a rare one.
Where the role may not create the pg_trgm extension the index is skipped (searches still work,
only slower at a large scale) rather than failing the migration.
"""

import logging

from django.db import DatabaseError, migrations, transaction

INDEX = "thread_title_trgm"
logger = logging.getLogger(__name__)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as error:
        logger.warning("pg_trgm is not available (%s): %s is not created", error, INDEX)
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON threads_thread USING gin ((upper(title::text)) gin_trgm_ops)"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("threads", "0002_postgres_gin_indexes")]
    operations = [migrations.RunPython(create, drop)]
