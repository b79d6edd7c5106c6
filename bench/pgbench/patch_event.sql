-- The PATCH's two writes as pgbench runs them: the metadata merge of one thread and its history
-- event (the insert a wake trigger would fire on), in one transaction. Run with -M prepared and
-- `-D org=… -D base=… -D stride=… -D spread=…` as patch.sql. bench/webhooks.py compares it with
-- and without a NOTIFY trigger on the event insert.
\set n :base + :stride * random(0, :spread - 1)
\set v random(1, 1000000000)
BEGIN;
UPDATE threads_thread
   SET metadata = metadata || jsonb_build_object('bench', 'pg-' || :v),
       version = version + 1, updated_at = now()
 WHERE organization_id = :org AND id = md5('bench-main-' || :n)::uuid;
INSERT INTO threads_event (thread_id, action, version, actor_type, actor_id, actor_name, changes, created_at,
                           organization_id)
SELECT id, 'updated', version, 'api_key', 'bench', 'bench', '{}'::jsonb, now(), organization_id
  FROM threads_thread WHERE organization_id = :org AND id = md5('bench-main-' || :n)::uuid;
COMMIT;
