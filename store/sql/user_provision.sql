-- User sync (SPEC §14): one new users row for a verified token's subject,
-- with its auth_sync_state, in one statement. $1 authentik_sub, $2 email,
-- $3 display_name, $4 iss (source_version), $5 problems (last_error); ''
-- stands for NULL. An email another user holds is left NULL and said in
-- last_error. ON CONFLICT DO NOTHING covers both unique keys: no row comes
-- back when the subject exists (another replica created it) or when a
-- concurrent insert took the email first. Only status, is_active and the
-- columns named are set: no grants.
WITH want AS (
  SELECT nullif($2::text, '') AS email,
         EXISTS (SELECT 1 FROM users WHERE email = nullif($2::text, '')) AS email_taken
), ins AS (
  INSERT INTO users (authentik_sub, email, display_name, status, is_active)
  SELECT $1::text, CASE WHEN w.email_taken THEN NULL ELSE w.email END,
         nullif($3::text, ''), 'active'::record_status, true
  FROM want w
  ON CONFLICT DO NOTHING
  RETURNING id
)
INSERT INTO auth_sync_state (user_id, last_synced_at, source_version, last_error, updated_at)
SELECT ins.id, now(), nullif($4::text, ''),
       nullif(concat_ws('; ', nullif($5::text, ''),
                        CASE WHEN w.email_taken THEN 'email: held by another user' END), ''),
       now()
FROM ins, want w
RETURNING user_id::text
