-- One batched write of the newest use per client. The WHERE clause never
-- moves last_used_at backwards (another replica may have written a newer
-- time). The api_clients notify trigger ignores updates of only this column.
UPDATE api_clients AS c
SET last_used_at = v.t
FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, t)
WHERE c.id = v.id
  AND (c.last_used_at IS NULL OR c.last_used_at < v.t)
