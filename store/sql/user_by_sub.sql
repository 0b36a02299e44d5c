SELECT id::text, authentik_sub, coalesce(email, ''), coalesce(display_name, ''), status::text, is_active
FROM users
WHERE authentik_sub = $1
