-- 0001: the member platform's schema as DB_SCHEMA_SNAPSHOT.md describes it
-- (eight tables, four enum types, every constraint and index with its
-- snapshot name), plus the defaults of SPEC §2. On an existing member
-- database this migration is recorded as a baseline and never run.

CREATE TYPE client_status AS ENUM ('active', 'suspended', 'revoked');
CREATE TYPE record_status AS ENUM ('active', 'inactive');
CREATE TYPE permission_action AS ENUM ('view', 'create', 'update', 'delete', 'manage');
CREATE TYPE scope_type AS ENUM ('company', 'site');

CREATE TABLE api_clients (
    id                 uuid NOT NULL DEFAULT gen_random_uuid(),
    client_key         text NOT NULL,
    name               text NOT NULL,
    status             client_status NOT NULL,
    api_key_hash       text NOT NULL,
    allowed_origins    jsonb NOT NULL DEFAULT '[]'::jsonb,
    allowed_ips        jsonb NOT NULL DEFAULT '[]'::jsonb,
    allowed_paths      jsonb NOT NULL DEFAULT '[]'::jsonb,
    rate_limit_per_min integer,
    expires_at         timestamp with time zone,
    last_used_at       timestamp with time zone,
    created_at         timestamp with time zone NOT NULL DEFAULT now(),
    updated_at         timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT api_clients_pkey PRIMARY KEY (id),
    CONSTRAINT api_clients_client_key_key UNIQUE (client_key)
);
CREATE INDEX idx_api_clients_expires_at ON api_clients USING btree (expires_at);
CREATE INDEX idx_api_clients_status ON api_clients USING btree (status);

CREATE TABLE users (
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    authentik_sub     text NOT NULL,
    email             text,
    display_name      text,
    status            record_status NOT NULL,
    created_at        timestamp with time zone NOT NULL DEFAULT now(),
    updated_at        timestamp with time zone NOT NULL DEFAULT now(),
    authentik_user_id integer,
    is_active         boolean NOT NULL DEFAULT true,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_authentik_sub_key UNIQUE (authentik_sub),
    CONSTRAINT users_email_key UNIQUE (email)
);
CREATE INDEX idx_users_authentik_sub ON users USING btree (authentik_sub);

CREATE TABLE auth_sync_state (
    user_id        uuid NOT NULL,
    last_synced_at timestamp with time zone,
    source_version text,
    last_error     text,
    updated_at     timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT auth_sync_state_pkey PRIMARY KEY (user_id),
    CONSTRAINT auth_sync_state_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE TABLE companies (
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    company_key text NOT NULL,
    name        text NOT NULL,
    status      record_status NOT NULL,
    created_at  timestamp with time zone NOT NULL DEFAULT now(),
    updated_at  timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT companies_pkey PRIMARY KEY (id),
    CONSTRAINT companies_company_key_key UNIQUE (company_key)
);

CREATE TABLE modules (
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    module_key text NOT NULL,
    name       text NOT NULL,
    status     record_status NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT modules_pkey PRIMARY KEY (id),
    CONSTRAINT modules_module_key_key UNIQUE (module_key)
);

CREATE TABLE permissions (
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL,
    scope_type character varying(32) NOT NULL,
    scope_id   character varying(128) NOT NULL,
    module     character varying(128) NOT NULL,
    action     character varying(32) NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT permissions_pkey PRIMARY KEY (id),
    CONSTRAINT permissions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT uq_permissions_user_scope_module_action UNIQUE (user_id, scope_type, scope_id, module, action)
);
CREATE INDEX idx_permissions_user_id ON permissions USING btree (user_id);

CREATE TABLE sites (
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    site_key   text NOT NULL,
    company_id uuid NOT NULL,
    name       text NOT NULL,
    status     record_status NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT sites_pkey PRIMARY KEY (id),
    CONSTRAINT sites_site_key_key UNIQUE (site_key),
    CONSTRAINT sites_company_id_fkey FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE CASCADE
);
CREATE INDEX idx_sites_company_id ON sites USING btree (company_id);

CREATE TABLE user_scope_permissions (
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL,
    module_id  uuid NOT NULL,
    action     permission_action NOT NULL,
    scope_type scope_type NOT NULL,
    company_id uuid,
    site_id    uuid,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT user_scope_permissions_pkey PRIMARY KEY (id),
    CONSTRAINT user_scope_permissions_check CHECK (
        (scope_type = 'company'::scope_type AND company_id IS NOT NULL AND site_id IS NULL)
        OR (scope_type = 'site'::scope_type AND site_id IS NOT NULL AND company_id IS NULL)),
    CONSTRAINT user_scope_permissions_company_id_fkey FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE CASCADE,
    CONSTRAINT user_scope_permissions_module_id_fkey FOREIGN KEY (module_id) REFERENCES modules (id) ON DELETE CASCADE,
    CONSTRAINT user_scope_permissions_site_id_fkey FOREIGN KEY (site_id) REFERENCES sites (id) ON DELETE CASCADE,
    CONSTRAINT user_scope_permissions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX idx_usp_company_id ON user_scope_permissions USING btree (company_id);
CREATE INDEX idx_usp_module_id ON user_scope_permissions USING btree (module_id);
CREATE INDEX idx_usp_site_id ON user_scope_permissions USING btree (site_id);
CREATE INDEX idx_usp_user_id ON user_scope_permissions USING btree (user_id);
CREATE UNIQUE INDEX uq_usp_company ON user_scope_permissions USING btree (user_id, module_id, action, scope_type, company_id)
    WHERE (scope_type = 'company'::scope_type);
CREATE UNIQUE INDEX uq_usp_site ON user_scope_permissions USING btree (user_id, module_id, action, scope_type, site_id)
    WHERE (scope_type = 'site'::scope_type);
