-- Which of these api_clients ids still exist (a full reload finding the
-- rows deleted since the snapshot it edits).
SELECT id::text FROM api_clients WHERE id = ANY($1::uuid[])
