-- Storage (issue 17): the files a tenant keeps in its S3 namespace, the uploads under way,
-- the limits every writer meets (not only the storage service), the hourly stored-bytes
-- sample, and the notice the namespace keeper listens for.

-- ---------------------------------------------------------------------------
-- Plans: a single-file limit. NULL is none beyond the storage limit.
-- ---------------------------------------------------------------------------
ALTER TABLE plans ADD COLUMN max_file_bytes bigint CONSTRAINT plans_max_file_bytes_positive CHECK (max_file_bytes > 0);
UPDATE plans SET max_file_bytes = CASE id WHEN 'free' THEN 26214400 WHEN 'starter' THEN 104857600 WHEN 'pro' THEN 1073741824 END
 WHERE id IN ('free', 'starter', 'pro');

-- The limits in force gain it (plan only: tenants have no override of it). A new result
-- column means a new function; callers name the columns they read.
DROP FUNCTION app.tenant_entitlements(uuid);
DROP FUNCTION app.tenant_limits(uuid);
CREATE FUNCTION app.tenant_limits(p_tenant_id uuid)
RETURNS TABLE (max_users integer, max_storage_bytes bigint, max_api_requests_month bigint, rate_limit_rps integer, max_file_bytes bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT coalesce(t.max_users, p.max_users),
         coalesce(t.max_storage_bytes, p.max_storage_bytes),
         coalesce(t.max_api_requests_month, p.max_api_requests_month),
         p.rate_limit_rps,
         p.max_file_bytes
  FROM public.tenants t JOIN public.plans p ON p.id = t.plan_id
  WHERE t.id = p_tenant_id
$$;
CREATE FUNCTION app.tenant_entitlements(p_tenant_id uuid)
RETURNS TABLE (plan_id text, features jsonb, max_users integer, max_storage_bytes bigint, max_api_requests_month bigint, rate_limit_rps integer,
               max_file_bytes bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT t.plan_id, app.features_in_force(t.plan_id, t.feature_overrides),
         l.max_users, l.max_storage_bytes, l.max_api_requests_month, l.rate_limit_rps, l.max_file_bytes
  FROM public.tenants t, app.tenant_limits(t.id) AS l
  WHERE t.id = p_tenant_id
$$;
ALTER FUNCTION app.tenant_limits(uuid) OWNER TO app_definer;
ALTER FUNCTION app.tenant_entitlements(uuid) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.tenant_limits(uuid), app.tenant_entitlements(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenant_limits(uuid) TO app_service, platform_admin;
GRANT EXECUTE ON FUNCTION app.tenant_entitlements(uuid) TO app_service, platform_admin, app_definer;

-- ---------------------------------------------------------------------------
-- The edge serves S3 at s3.<BASE_DOMAIN>: no tenant may take the label. (The slug format
-- already needs three characters; the list is where the edge's labels are kept.)
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION app.is_reserved_slug(slug text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT slug = ANY (ARRAY[
    'admin', 'api', 'app', 'assets', 'auth', 'billing', 'blog', 'cdn', 'console', 'dashboard',
    'default', 'docs', 'edge', 'graphql', 'hasura', 'help', 'internal', 'localhost', 'mail',
    'null', 'platform', 'public', 'root', 's3', 'smtp', 'static', 'staff', 'status', 'storage',
    'support', 'system', 'tenantry', 'undefined', 'webhooks', 'www'
  ])
$$;

-- ---------------------------------------------------------------------------
-- Object names: what S3 takes as a key, minus what would let a name climb out of its
-- bucket or prefix when a tool maps keys to paths (the export writes them to disk).
-- ---------------------------------------------------------------------------
CREATE FUNCTION app.is_valid_file_name(name text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT octet_length(name) BETWEEN 1 AND 1024
     AND name !~ '[\u0001-\u001f\u007f\\]'
     AND left(name, 1) <> '/' AND right(name, 1) <> '/'
     AND strpos(name, '//') = 0
     AND ('/' || name || '/') !~ '/\.\.?/'
     -- File-backed S3 servers (MinIO) store a segment as a file name.
     AND NOT EXISTS (SELECT 1 FROM regexp_split_to_table(name, '/') AS segment WHERE octet_length(segment) > 255)
$$;

-- ---------------------------------------------------------------------------
-- Files: one row per stored object. The object's key is the tenant's location plus
-- `<bucket>/<name>` (services/shared/src/storage/location.ts).
-- ---------------------------------------------------------------------------
CREATE TABLE files (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL DEFAULT app.current_tenant_id() REFERENCES tenants (id) ON DELETE CASCADE,
  -- A logical bucket within the tenant's namespace, S3's bucket-name alphabet.
  bucket text NOT NULL CONSTRAINT files_bucket_valid CHECK (bucket ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
  name text NOT NULL CONSTRAINT files_name_valid CHECK (app.is_valid_file_name(name)),
  size bigint NOT NULL CONSTRAINT files_size_valid CHECK (size >= 0),
  content_type text NOT NULL CONSTRAINT files_content_type_valid CHECK (
    length(content_type) BETWEEN 1 AND 255
    AND content_type ~ '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*( *;[ -~]*)?$'
  ),
  -- Lower-case hex; S3's x-amz-checksum-sha256 carries the same digest in base64.
  sha256 text NOT NULL CONSTRAINT files_sha256_valid CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  uploaded_by uuid DEFAULT app.current_user_id() REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT files_name_taken UNIQUE (tenant_id, bucket, name),
  -- The target of the uploads' same-tenant reference; its INCLUDE gives the limit check's
  -- stored-bytes sum from the index alone.
  CONSTRAINT files_tenant_id_id_key UNIQUE (tenant_id, id) INCLUDE (size)
);
SELECT app.enable_tenant_isolation('files');

-- ---------------------------------------------------------------------------
-- Uploads: a presigned POST handed out. Its size counts against the storage limit while
-- pending, so uploads under way can never add up past it; completing it moves the bytes
-- to its file (marked completed before the file row goes in), expiry or refusal frees them.
-- ---------------------------------------------------------------------------
CREATE TABLE file_uploads (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL DEFAULT app.current_tenant_id() REFERENCES tenants (id) ON DELETE CASCADE,
  bucket text NOT NULL CONSTRAINT file_uploads_bucket_valid CHECK (bucket ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
  name text NOT NULL CONSTRAINT file_uploads_name_valid CHECK (app.is_valid_file_name(name)),
  size bigint NOT NULL CONSTRAINT file_uploads_size_valid CHECK (size >= 0),
  content_type text NOT NULL CONSTRAINT file_uploads_content_type_valid CHECK (
    length(content_type) BETWEEN 1 AND 255
    AND content_type ~ '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*( *;[ -~]*)?$'
  ),
  sha256 text NOT NULL CONSTRAINT file_uploads_sha256_valid CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  created_by uuid DEFAULT app.current_user_id() REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  status text NOT NULL DEFAULT 'pending' CONSTRAINT file_uploads_status_valid CHECK (status IN ('pending', 'completed', 'expired', 'refused')),
  completed_at timestamptz,
  -- When the sweeper was done with it: its policy past (plus the grace), nothing it can still
  -- store is left uncounted. Until then a policy replayed after a refusal or its file's
  -- deletion can put bytes no row counts, and the sweeper looks at its key once more.
  settled_at timestamptz,
  -- Same tenant as the upload: a foreign key check ignores row-level security, so a plain
  -- reference would tell a service whether another tenant's file id exists.
  file_id uuid,
  CONSTRAINT file_uploads_file_fkey FOREIGN KEY (tenant_id, file_id) REFERENCES files (tenant_id, id) ON DELETE SET NULL (file_id)
);
CREATE INDEX file_uploads_tenant_id_created_at_idx ON file_uploads (tenant_id, created_at DESC, id);
CREATE UNIQUE INDEX file_uploads_name_pending ON file_uploads (tenant_id, bucket, name) WHERE status = 'pending';
-- The sweeper's scan: unsettled uploads by expiry (every upload is settled once its policy is past).
CREATE INDEX file_uploads_unsettled_expires_at_idx ON file_uploads (expires_at) WHERE settled_at IS NULL;
SELECT app.enable_tenant_isolation('file_uploads');

CREATE FUNCTION app.stamp_file_upload_completed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
  IF NEW.status = 'completed' AND NEW.completed_at IS NULL THEN
    NEW.completed_at := now();
  END IF;
  RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION app.stamp_file_upload_completed() FROM PUBLIC;
CREATE TRIGGER file_uploads_stamp_completed BEFORE INSERT OR UPDATE OF status ON file_uploads
  FOR EACH ROW EXECUTE FUNCTION app.stamp_file_upload_completed();

-- Starting an upload of a name waits while the sweeper decides about that name's key: had
-- the sweeper seen no upload of the name and then deleted the key after a new one's object
-- landed, the new file would lose its object. Transaction-scoped, beside the per-tenant
-- storage lock (another first key).
CREATE FUNCTION app.lock_file_name(p_tenant uuid, p_bucket text, p_name text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT pg_advisory_xact_lock(hashtext('tenantry.storage.name'), hashtext(p_tenant::text || '/' || p_bucket || '/' || p_name))
$$;
CREATE FUNCTION app.lock_file_upload_name() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
  PERFORM app.lock_file_name(NEW.tenant_id, NEW.bucket, NEW.name);
  RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION app.lock_file_name(uuid, text, text), app.lock_file_upload_name() FROM PUBLIC;
-- Whoever may insert uploads (the trigger runs as them), and the sweeper (app_service).
GRANT EXECUTE ON FUNCTION app.lock_file_name(uuid, text, text) TO app_service, platform_admin;
CREATE TRIGGER file_uploads_lock_name BEFORE INSERT ON file_uploads
  FOR EACH ROW EXECUTE FUNCTION app.lock_file_upload_name();

-- ---------------------------------------------------------------------------
-- The limits.
-- ---------------------------------------------------------------------------
-- Bytes a tenant holds or has promised: its files and its pending uploads. PL/pgSQL, not
-- SQL: a SQL function with SET is never inlined and plans its query anew on every call with
-- one generic plan for any tenant, which became a scan of every tenant's files once one
-- tenant held 100,000 (bench:storage: each reservation of every tenant 7–9 ms, under its
-- lock); PL/pgSQL keeps its plans and plans for the tenant at hand.
CREATE FUNCTION app.storage_bytes_committed(p_tenant uuid) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
  RETURN (SELECT coalesce(sum(f.size), 0) FROM public.files f WHERE f.tenant_id = p_tenant)::bigint
       + (SELECT coalesce(sum(u.size), 0) FROM public.file_uploads u WHERE u.tenant_id = p_tenant AND u.status = 'pending')::bigint;
END
$$;

-- Checked AFTER the rows are in, like the user limit: row-level security refuses a foreign
-- tenant's row first, so neither another tenant's limits nor its lock ever show. Per
-- statement on INSERT (an import inserts hundreds of files at once: one sum per tenant, not
-- one per row), per row on the UPDATEs that add bytes. A transaction-scoped advisory lock
-- per tenant makes concurrent writers take turns; each statement of this (volatile)
-- function takes a new snapshot in READ COMMITTED, so the sum after the lock counts every
-- row committed before it, and the new rows themselves.
CREATE FUNCTION app.enforce_storage_limits() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  uploads constant boolean := TG_TABLE_NAME = 'file_uploads';
  tenant_ids uuid[];
  largest bigint[];
  storage_limit bigint;
  file_limit bigint;
  committed bigint;
BEGIN
  -- The sum after the lock must see what others committed before it: only READ COMMITTED
  -- takes a new snapshot per statement. A writer in REPEATABLE READ or SERIALIZABLE would sum
  -- the rows of its older snapshot and could pass the limit.
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'files and uploads are written in READ COMMITTED transactions only (this one is %)', current_setting('transaction_isolation')
      USING ERRCODE = 'serialization_failure';
  END IF;
  IF TG_LEVEL = 'ROW' THEN
    tenant_ids := ARRAY[NEW.tenant_id];
    largest := ARRAY[NEW.size];
  ELSIF uploads THEN
    SELECT array_agg(w.tenant_id ORDER BY w.tenant_id), array_agg(w.size ORDER BY w.tenant_id) INTO tenant_ids, largest
      FROM (SELECT n.tenant_id, max(n.size) FROM new_rows n WHERE n.status = 'pending' GROUP BY n.tenant_id) AS w(tenant_id, size);
  ELSE
    SELECT array_agg(w.tenant_id ORDER BY w.tenant_id), array_agg(w.size ORDER BY w.tenant_id) INTO tenant_ids, largest
      FROM (SELECT n.tenant_id, max(n.size) FROM new_rows n GROUP BY n.tenant_id) AS w(tenant_id, size);
  END IF;
  -- In tenant order, so two statements writing for the same tenants cannot deadlock.
  FOR i IN 1 .. coalesce(array_length(tenant_ids, 1), 0) LOOP
    PERFORM pg_advisory_xact_lock(hashtext('tenantry.storage'), hashtext(tenant_ids[i]::text));
    SELECT l.max_storage_bytes, l.max_file_bytes INTO storage_limit, file_limit FROM app.tenant_limits(tenant_ids[i]) AS l;
    IF uploads AND largest[i] > file_limit THEN
      RAISE EXCEPTION 'a file may hold at most % bytes on this plan (% bytes asked)', file_limit, largest[i]
        USING ERRCODE = 'check_violation', CONSTRAINT = 'file_uploads_file_size_limit',
              HINT = 'Upload a smaller file or move the tenant to a plan with a larger single-file limit.';
    END IF;
    IF storage_limit IS NOT NULL THEN
      -- The new rows are already in: they count.
      committed := app.storage_bytes_committed(tenant_ids[i]);
      IF committed > storage_limit THEN
        RAISE EXCEPTION 'tenant has reached its storage limit of % bytes (% bytes stored or being uploaded with this one)', storage_limit, committed
          USING ERRCODE = 'check_violation', CONSTRAINT = CASE WHEN uploads THEN 'file_uploads_storage_limit' ELSE 'files_storage_limit' END,
                HINT = 'Delete files, wait for uploads under way to finish, or move the tenant to a plan with more storage.';
      END IF;
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;
CREATE TRIGGER file_uploads_limits AFTER INSERT ON file_uploads
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.enforce_storage_limits();
-- An upload re-opened, grown or moved takes bytes again; completing, expiring or refusing one frees them.
CREATE TRIGGER file_uploads_limits_on_update AFTER UPDATE OF status, size, tenant_id ON file_uploads
  FOR EACH ROW WHEN (NEW.status = 'pending' AND (OLD.status <> 'pending' OR NEW.size > OLD.size OR NEW.tenant_id <> OLD.tenant_id))
  EXECUTE FUNCTION app.enforce_storage_limits();
CREATE TRIGGER files_limits AFTER INSERT ON files
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.enforce_storage_limits();
CREATE TRIGGER files_limits_on_update AFTER UPDATE OF size, tenant_id ON files
  FOR EACH ROW WHEN (NEW.size > OLD.size OR NEW.tenant_id <> OLD.tenant_id)
  EXECUTE FUNCTION app.enforce_storage_limits();

-- Unsettled uploads past their policy's expiry and a grace (a POST begun just before expiry
-- may still be landing), oldest first, for the storage service's sweeper. A presigned POST
-- cannot be revoked, so until then S3 may store its bytes again. The sweeper deletes the
-- key unless a file or another pending upload holds the name now, expires a pending upload,
-- and marks it settled: for a refused upload, or a completed one whose file was deleted
-- (file_id NULL), the key holds nothing but what a replay put there; a completed one whose
-- file lives keeps its object. status and file_id say which. (An upload imported as
-- expired comes unsettled, and is looked at once like the others.)
-- A deleted tenant's rows are read-only, so they are left to the purge rather than handed
-- out again on every pass.
CREATE FUNCTION app.storage_uploads_due(p_grace interval, p_limit integer)
RETURNS TABLE (id uuid, tenant_id uuid, bucket text, name text, status text, file_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT u.id, u.tenant_id, u.bucket, u.name, u.status, u.file_id
  FROM public.file_uploads u JOIN public.tenants t ON t.id = u.tenant_id
  WHERE u.settled_at IS NULL AND u.expires_at < now() - p_grace AND t.status <> 'deleted'
  ORDER BY u.expires_at, u.id
  LIMIT p_limit
$$;

-- ---------------------------------------------------------------------------
-- Usage: stored bytes (files only: an upload's bytes are not stored until it completes),
-- sampled like the member count.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION app.usage_sample(p_metric text, p_hour timestamptz) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  sampled integer;
BEGIN
  IF p_metric NOT IN ('users.count', 'storage.bytes') THEN
    RAISE EXCEPTION 'unknown sampled metric %', p_metric USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO public.tenant_usage AS u (tenant_id, metric, period_start, quantity)
  SELECT t.id, p_metric, date_trunc('hour', p_hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
         CASE p_metric
           WHEN 'users.count' THEN (SELECT count(*) FROM public.tenant_members m WHERE m.tenant_id = t.id)
           ELSE (SELECT coalesce(sum(f.size), 0) FROM public.files f WHERE f.tenant_id = t.id)
         END
  FROM public.tenants t WHERE t.status <> 'deleted'
  ON CONFLICT (tenant_id, metric, period_start) DO UPDATE SET quantity = excluded.quantity, updated_at = now();
  GET DIAGNOSTICS sampled = ROW_COUNT;
  RETURN sampled;
END
$$;

-- ---------------------------------------------------------------------------
-- The namespace keeper (services/storage) makes, disables and removes a tenant's bucket
-- and Redis user as the tenant comes, changes status and goes, whichever path moved it.
-- ---------------------------------------------------------------------------
CREATE FUNCTION app.notify_tenant_namespaces() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('tenant_namespaces', OLD.id::text);
  ELSIF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
    PERFORM pg_notify('tenant_namespaces', NEW.id::text);
  END IF;
  RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION app.notify_tenant_namespaces() FROM PUBLIC;
CREATE TRIGGER tenants_notify_namespaces AFTER INSERT OR UPDATE OF status OR DELETE ON tenants
  FOR EACH ROW EXECUTE FUNCTION app.notify_tenant_namespaces();

-- ---------------------------------------------------------------------------
-- The role model: files and storage credentials (services/shared/src/permissions.ts says the same).
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION app.role_permissions(p_role member_role) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE p_role
    WHEN 'owner' THEN ARRAY['*']
    WHEN 'admin' THEN ARRAY['users:*', 'projects:*', 'settings:read', 'settings:write', 'billing:read', 'files:read', 'files:write', 'storage:credentials']
    WHEN 'member' THEN ARRAY['projects:read', 'projects:write', 'files:read', 'files:write']
    WHEN 'guest' THEN ARRAY['projects:read', 'files:read']
  END
$$;

-- ---------------------------------------------------------------------------
-- Ownership and privileges.
-- ---------------------------------------------------------------------------
-- Every tenant id after p_after, a page at a time, for the storage service's namespace keeper:
-- app_service sees one tenant at a time through row-level security, and the keeper must find
-- a tenant whose notice it missed even when neither its Redis user nor its bucket exists.
CREATE FUNCTION app.storage_tenant_ids(p_after uuid, p_limit integer) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT t.id FROM public.tenants t
  WHERE p_after IS NULL OR t.id > p_after
  ORDER BY t.id
  LIMIT least(greatest(p_limit, 1), 10000)
$$;
-- A tenant's status (NULL: no such row) for the keeper: its namespaces follow it.
CREATE FUNCTION app.storage_tenant_status(p_tenant uuid) RETURNS tenant_status
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT t.status FROM public.tenants t WHERE t.id = p_tenant
$$;
ALTER FUNCTION app.storage_tenant_ids(uuid, integer) OWNER TO app_definer;
ALTER FUNCTION app.storage_tenant_status(uuid) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.storage_tenant_ids(uuid, integer), app.storage_tenant_status(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.storage_tenant_ids(uuid, integer), app.storage_tenant_status(uuid) TO app_service;

ALTER FUNCTION app.storage_bytes_committed(uuid) OWNER TO app_definer;
ALTER FUNCTION app.enforce_storage_limits() OWNER TO app_definer;
ALTER FUNCTION app.storage_uploads_due(interval, integer) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.storage_bytes_committed(uuid), app.enforce_storage_limits(),
  app.storage_uploads_due(interval, integer), app.is_valid_file_name(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.storage_bytes_committed(uuid), app.storage_uploads_due(interval, integer) TO app_service, platform_admin;
-- The CHECK constraints of files and file_uploads: every writer, and the services validate with it.
GRANT EXECUTE ON FUNCTION app.is_valid_file_name(text) TO hasura_app, app_service, platform_admin, app_definer;

-- Writes go through the storage service; Hasura only reads (scripts/hasura/registry.ts).
GRANT SELECT, INSERT, UPDATE, DELETE ON files, file_uploads TO app_service;
GRANT SELECT (id, tenant_id, bucket, name, size, content_type, sha256, uploaded_by, created_at) ON files TO hasura_app;
GRANT SELECT (id, tenant_id, bucket, name, size, content_type, sha256, created_by, created_at, expires_at, status, completed_at, file_id)
  ON file_uploads TO hasura_app;
-- The CLI: export reads, import inserts, purge deletes.
GRANT SELECT, INSERT, UPDATE, DELETE ON files, file_uploads TO platform_admin;
-- The definers sum them and sample them.
GRANT SELECT ON files, file_uploads TO app_definer;
