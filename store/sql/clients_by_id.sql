-- The api_clients rows with these ids (change feed); same columns as
-- clients_all.sql.
SELECT id::text, client_key, name, status::text, api_key_hash,
       allowed_origins::text, allowed_ips::text, allowed_paths::text,
       rate_limit_per_min, expires_at, last_used_at, updated_at
FROM api_clients
WHERE id = ANY($1::uuid[])
