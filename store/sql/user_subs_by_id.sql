SELECT id::text, authentik_sub FROM users WHERE id = ANY($1::uuid[])
