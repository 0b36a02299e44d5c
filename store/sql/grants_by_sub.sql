-- A user's grants from user_scope_permissions, with the module's key and the
-- scope's id (company_id or site_id; the directory knows each site's company).
SELECT m.module_key, g.action::text, g.scope_type::text, coalesce(g.company_id, g.site_id)::text
FROM user_scope_permissions g
JOIN users u ON u.id = g.user_id
JOIN modules m ON m.id = g.module_id
WHERE u.authentik_sub = $1
