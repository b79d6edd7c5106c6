-- The database's own limit for the benchmark's PATCH: the same merge of one metadata key as one
-- jsonb UPDATE (no history row, no application). Run with -M prepared and
-- `-D org=… -D base=… -D stride=… -D spread=…`, which pick the row(s) exactly as the wrk run does:
-- thread n = base + stride * random(0, spread - 1) of the main organization.
\set n :base + :stride * random(0, :spread - 1)
\set v random(1, 1000000000)
UPDATE threads_thread
   SET metadata = metadata || jsonb_build_object('bench', 'pg-' || :v),
       version = version + 1, updated_at = now()
 WHERE organization_id = :org AND id = md5('bench-main-' || :n)::uuid;
