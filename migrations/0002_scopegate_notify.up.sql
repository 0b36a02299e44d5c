-- 0002: scopegate's own migration. It adds a trigger function and triggers
-- and touches no existing column. After every insert, update and delete on
-- the tables scopegate caches it sends pg_notify('scopegate_changes', json)
-- with the table name (no schema), TG_OP, the row's id and, for the two
-- permission tables, the row's user_id:
--   {"table": "user_scope_permissions", "op": "DELETE", "id": "<uuid>", "user_id": "<uuid>"}
-- An update that moves a permission row to another user also notifies the
-- old user. A TRUNCATE sends one notification without id (reload the table).

CREATE FUNCTION scopegate_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    with_user boolean := TG_NARGS > 0 AND TG_ARGV[0] = 'user_id';
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('scopegate_changes',
            jsonb_build_object('table', TG_TABLE_NAME, 'op', TG_OP)::text);
        RETURN NULL;
    END IF;
    IF with_user THEN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('scopegate_changes', jsonb_build_object(
                'table', TG_TABLE_NAME, 'op', TG_OP, 'id', OLD.id, 'user_id', OLD.user_id)::text);
        ELSE
            IF TG_OP = 'UPDATE' AND OLD.user_id IS DISTINCT FROM NEW.user_id THEN
                PERFORM pg_notify('scopegate_changes', jsonb_build_object(
                    'table', TG_TABLE_NAME, 'op', TG_OP, 'id', OLD.id, 'user_id', OLD.user_id)::text);
            END IF;
            PERFORM pg_notify('scopegate_changes', jsonb_build_object(
                'table', TG_TABLE_NAME, 'op', TG_OP, 'id', NEW.id, 'user_id', NEW.user_id)::text);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('scopegate_changes', jsonb_build_object(
            'table', TG_TABLE_NAME, 'op', TG_OP, 'id', OLD.id)::text);
    ELSE
        PERFORM pg_notify('scopegate_changes', jsonb_build_object(
            'table', TG_TABLE_NAME, 'op', TG_OP, 'id', NEW.id)::text);
    END IF;
    RETURN NULL;
END;
$$;

-- api_clients: scopegate's own last_used_at flushes must not wake every
-- replica, so an update that changes only last_used_at sends nothing.
CREATE TRIGGER scopegate_notify_insert_delete AFTER INSERT OR DELETE ON api_clients
    FOR EACH ROW EXECUTE FUNCTION scopegate_notify_change();
CREATE TRIGGER scopegate_notify_update AFTER UPDATE ON api_clients
    FOR EACH ROW
    WHEN ((to_jsonb(OLD.*) - 'last_used_at') IS DISTINCT FROM (to_jsonb(NEW.*) - 'last_used_at'))
    EXECUTE FUNCTION scopegate_notify_change();

CREATE TRIGGER scopegate_notify AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION scopegate_notify_change();
CREATE TRIGGER scopegate_notify AFTER INSERT OR UPDATE OR DELETE ON user_scope_permissions
    FOR EACH ROW EXECUTE FUNCTION scopegate_notify_change('user_id');
CREATE TRIGGER scopegate_notify AFTER INSERT OR UPDATE OR DELETE ON permissions
    FOR EACH ROW EXECUTE FUNCTION scopegate_notify_change('user_id');
CREATE TRIGGER scopegate_notify AFTER INSERT OR UPDATE OR DELETE ON modules
    FOR EACH ROW EXECUTE FUNCTION scopegate_notify_change();
CREATE TRIGGER scopegate_notify AFTER INSERT OR UPDATE OR DELETE ON companies
    FOR EACH ROW EXECUTE FUNCTION scopegate_notify_change();
CREATE TRIGGER scopegate_notify AFTER INSERT OR UPDATE OR DELETE ON sites
    FOR EACH ROW EXECUTE FUNCTION scopegate_notify_change();

CREATE TRIGGER scopegate_notify_truncate AFTER TRUNCATE ON api_clients
    FOR EACH STATEMENT EXECUTE FUNCTION scopegate_notify_change();
CREATE TRIGGER scopegate_notify_truncate AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION scopegate_notify_change();
CREATE TRIGGER scopegate_notify_truncate AFTER TRUNCATE ON user_scope_permissions
    FOR EACH STATEMENT EXECUTE FUNCTION scopegate_notify_change();
CREATE TRIGGER scopegate_notify_truncate AFTER TRUNCATE ON permissions
    FOR EACH STATEMENT EXECUTE FUNCTION scopegate_notify_change();
CREATE TRIGGER scopegate_notify_truncate AFTER TRUNCATE ON modules
    FOR EACH STATEMENT EXECUTE FUNCTION scopegate_notify_change();
CREATE TRIGGER scopegate_notify_truncate AFTER TRUNCATE ON companies
    FOR EACH STATEMENT EXECUTE FUNCTION scopegate_notify_change();
CREATE TRIGGER scopegate_notify_truncate AFTER TRUNCATE ON sites
    FOR EACH STATEMENT EXECUTE FUNCTION scopegate_notify_change();
