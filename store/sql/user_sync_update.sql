-- User sync (SPEC §14): the changed email/display_name of known users, one
-- statement per batch. Arrays: $1 ids, $2 emails, $3 display names, $4 iss,
-- $5 problems ('' stands for nothing usable / NULL); $6 the sync interval
-- in microseconds.
-- A user synced less than the interval ago (by any replica) is skipped.
-- Only email, display_name and updated_at change (never status, is_active
-- or grants); a column the claims give nothing for is kept; an email
-- another user holds is kept out and said in last_error. Every user synced
-- gets its auth_sync_state written.
WITH v AS (
  SELECT id, nullif(email, '') AS email, nullif(display_name, '') AS display_name,
         nullif(iss, '') AS iss, nullif(problems, '') AS problems
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
    AS v(id, email, display_name, iss, problems)
), due AS (
  SELECT v.*,
         v.email IS NOT NULL AND v.email IS DISTINCT FROM u.email
           AND EXISTS (SELECT 1 FROM users o WHERE o.email = v.email AND o.id <> v.id) AS email_taken
  FROM v
  JOIN users u ON u.id = v.id
  LEFT JOIN auth_sync_state a ON a.user_id = v.id
  WHERE a.last_synced_at IS NULL OR a.last_synced_at <= now() - $6::bigint * interval '1 microsecond'
), upd AS (
  UPDATE users u
  SET email = CASE WHEN d.email IS NOT NULL AND NOT d.email_taken THEN d.email ELSE u.email END,
      display_name = coalesce(d.display_name, u.display_name),
      updated_at = now()
  FROM due d
  WHERE u.id = d.id
    AND ((d.email IS NOT NULL AND NOT d.email_taken AND d.email IS DISTINCT FROM u.email)
      OR (d.display_name IS NOT NULL AND d.display_name IS DISTINCT FROM u.display_name))
)
INSERT INTO auth_sync_state AS s (user_id, last_synced_at, source_version, last_error, updated_at)
SELECT d.id, now(), d.iss,
       nullif(concat_ws('; ', d.problems,
                        CASE WHEN d.email_taken THEN 'email: held by another user' END), ''),
       now()
FROM due d
ON CONFLICT (user_id) DO UPDATE
SET last_synced_at = EXCLUDED.last_synced_at, source_version = EXCLUDED.source_version,
    last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at
