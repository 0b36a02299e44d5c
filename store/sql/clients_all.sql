-- All api_clients rows. Enums are read as text so unknown labels load (only
-- 'active' is active); jsonb lists as text, parsed entry by entry in Go.
SELECT id::text, client_key, name, status::text, api_key_hash,
       allowed_origins::text, allowed_ips::text, allowed_paths::text,
       rate_limit_per_min, expires_at, last_used_at, updated_at
FROM api_clients
