-- Change feed for the findById read cache (REPOSITORY_CACHE_SIZE): every
-- committed write of a record notifies "collection/id" on
-- storaged_records. NOTIFY is transactional, so a write inside a
-- transaction is announced only when it commits, whoever wrote it.
--
-- The trigger is created disabled: NOTIFY serializes committing writers
-- on a global lock, and a deployment without caches should not pay for
-- it. A daemon started with a cache enables it (and nobody disables it
-- again, since another daemon's cache may rely on it).
CREATE FUNCTION storaged_record_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('storaged_records', OLD.collection || '/' || OLD.id);
    ELSE
        PERFORM pg_notify('storaged_records', NEW.collection || '/' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER storaged_record_changed
    AFTER INSERT OR UPDATE OR DELETE ON storaged_records
    FOR EACH ROW EXECUTE FUNCTION storaged_record_changed();

ALTER TABLE storaged_records DISABLE TRIGGER storaged_record_changed;
