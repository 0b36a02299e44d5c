-- Whether migration 0002's change triggers exist on api_clients (one of
-- them stands for all): without them nothing is notified.
SELECT EXISTS (SELECT 1 FROM pg_trigger
WHERE tgname = 'scopegate_notify_insert_delete' AND tgrelid = to_regclass('api_clients'))
