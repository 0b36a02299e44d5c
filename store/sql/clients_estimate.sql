-- The planner's estimate of the api_clients rows (-1 or 0 before the table
-- was first analyzed or vacuumed): sizes the first snapshot's maps, which
-- would otherwise grow and copy themselves a dozen times on the way to a
-- million clients. Only a hint; never relied on.
SELECT reltuples::bigint FROM pg_class WHERE oid = 'api_clients'::regclass
