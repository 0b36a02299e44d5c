-- A user's grants from the legacy permissions table; scope_id holds a key or
-- an id as text and is resolved by the policy engine.
SELECT p.module, p.action, p.scope_type, p.scope_id
FROM permissions p
JOIN users u ON u.id = p.user_id
WHERE u.authentik_sub = $1
