-- The member platform schema as plain DDL in pg_dump style, without any
-- scopegate object: the starting point of the baseline test.

-- client_status; Type: TYPE; Schema: public; Owner: -
CREATE TYPE public.client_status AS ENUM (
    'active',
    'suspended',
    'revoked'
);

-- permission_action; Type: TYPE; Schema: public; Owner: -
CREATE TYPE public.permission_action AS ENUM (
    'view',
    'create',
    'update',
    'delete',
    'manage'
);

-- record_status; Type: TYPE; Schema: public; Owner: -
CREATE TYPE public.record_status AS ENUM (
    'active',
    'inactive'
);

-- scope_type; Type: TYPE; Schema: public; Owner: -
CREATE TYPE public.scope_type AS ENUM (
    'company',
    'site'
);

-- api_clients; Type: TABLE; Schema: public; Owner: -
CREATE TABLE public.api_clients (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    client_key text NOT NULL,
    name text NOT NULL,
    status public.client_status NOT NULL,
    api_key_hash text NOT NULL,
    allowed_origins jsonb DEFAULT '[]'::jsonb NOT NULL,
    allowed_ips jsonb DEFAULT '[]'::jsonb NOT NULL,
    allowed_paths jsonb DEFAULT '[]'::jsonb NOT NULL,
    rate_limit_per_min integer,
    expires_at timestamp with time zone,
    last_used_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

-- auth_sync_state; Type: TABLE; Schema: public; Owner: -
CREATE TABLE public.auth_sync_state (
    user_id uuid NOT NULL,
    last_synced_at timestamp with time zone,
    source_version text,
    last_error text,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

-- companies; Type: TABLE; Schema: public; Owner: -
CREATE TABLE public.companies (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    company_key text NOT NULL,
    name text NOT NULL,
    status public.record_status NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

-- modules; Type: TABLE; Schema: public; Owner: -
CREATE TABLE public.modules (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    module_key text NOT NULL,
    name text NOT NULL,
    status public.record_status NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

-- permissions; Type: TABLE; Schema: public; Owner: -
CREATE TABLE public.permissions (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    scope_type character varying(32) NOT NULL,
    scope_id character varying(128) NOT NULL,
    module character varying(128) NOT NULL,
    action character varying(32) NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

-- sites; Type: TABLE; Schema: public; Owner: -
CREATE TABLE public.sites (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    site_key text NOT NULL,
    company_id uuid NOT NULL,
    name text NOT NULL,
    status public.record_status NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

-- user_scope_permissions; Type: TABLE; Schema: public; Owner: -
CREATE TABLE public.user_scope_permissions (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    module_id uuid NOT NULL,
    action public.permission_action NOT NULL,
    scope_type public.scope_type NOT NULL,
    company_id uuid,
    site_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT user_scope_permissions_check CHECK ((((scope_type = 'company'::public.scope_type) AND (company_id IS NOT NULL) AND (site_id IS NULL)) OR ((scope_type = 'site'::public.scope_type) AND (site_id IS NOT NULL) AND (company_id IS NULL))))
);

-- users; Type: TABLE; Schema: public; Owner: -
CREATE TABLE public.users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    authentik_sub text NOT NULL,
    email text,
    display_name text,
    status public.record_status NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    authentik_user_id integer,
    is_active boolean DEFAULT true NOT NULL
);

-- api_clients api_clients_client_key_key; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.api_clients
    ADD CONSTRAINT api_clients_client_key_key UNIQUE (client_key);

-- api_clients api_clients_pkey; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.api_clients
    ADD CONSTRAINT api_clients_pkey PRIMARY KEY (id);

-- auth_sync_state auth_sync_state_pkey; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.auth_sync_state
    ADD CONSTRAINT auth_sync_state_pkey PRIMARY KEY (user_id);

-- companies companies_company_key_key; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.companies
    ADD CONSTRAINT companies_company_key_key UNIQUE (company_key);

-- companies companies_pkey; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.companies
    ADD CONSTRAINT companies_pkey PRIMARY KEY (id);

-- modules modules_module_key_key; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.modules
    ADD CONSTRAINT modules_module_key_key UNIQUE (module_key);

-- modules modules_pkey; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.modules
    ADD CONSTRAINT modules_pkey PRIMARY KEY (id);

-- permissions permissions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.permissions
    ADD CONSTRAINT permissions_pkey PRIMARY KEY (id);

-- sites sites_pkey; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.sites
    ADD CONSTRAINT sites_pkey PRIMARY KEY (id);

-- sites sites_site_key_key; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.sites
    ADD CONSTRAINT sites_site_key_key UNIQUE (site_key);

-- permissions uq_permissions_user_scope_module_action; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.permissions
    ADD CONSTRAINT uq_permissions_user_scope_module_action UNIQUE (user_id, scope_type, scope_id, module, action);

-- user_scope_permissions user_scope_permissions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.user_scope_permissions
    ADD CONSTRAINT user_scope_permissions_pkey PRIMARY KEY (id);

-- users users_authentik_sub_key; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_authentik_sub_key UNIQUE (authentik_sub);

-- users users_email_key; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_email_key UNIQUE (email);

-- users users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

-- idx_api_clients_expires_at; Type: INDEX; Schema: public; Owner: -
CREATE INDEX idx_api_clients_expires_at ON public.api_clients USING btree (expires_at);

-- idx_api_clients_status; Type: INDEX; Schema: public; Owner: -
CREATE INDEX idx_api_clients_status ON public.api_clients USING btree (status);

-- idx_permissions_user_id; Type: INDEX; Schema: public; Owner: -
CREATE INDEX idx_permissions_user_id ON public.permissions USING btree (user_id);

-- idx_sites_company_id; Type: INDEX; Schema: public; Owner: -
CREATE INDEX idx_sites_company_id ON public.sites USING btree (company_id);

-- idx_users_authentik_sub; Type: INDEX; Schema: public; Owner: -
CREATE INDEX idx_users_authentik_sub ON public.users USING btree (authentik_sub);

-- idx_usp_company_id; Type: INDEX; Schema: public; Owner: -
CREATE INDEX idx_usp_company_id ON public.user_scope_permissions USING btree (company_id);

-- idx_usp_module_id; Type: INDEX; Schema: public; Owner: -
CREATE INDEX idx_usp_module_id ON public.user_scope_permissions USING btree (module_id);

-- idx_usp_site_id; Type: INDEX; Schema: public; Owner: -
CREATE INDEX idx_usp_site_id ON public.user_scope_permissions USING btree (site_id);

-- idx_usp_user_id; Type: INDEX; Schema: public; Owner: -
CREATE INDEX idx_usp_user_id ON public.user_scope_permissions USING btree (user_id);

-- uq_usp_company; Type: INDEX; Schema: public; Owner: -
CREATE UNIQUE INDEX uq_usp_company ON public.user_scope_permissions USING btree (user_id, module_id, action, scope_type, company_id) WHERE (scope_type = 'company'::public.scope_type);

-- uq_usp_site; Type: INDEX; Schema: public; Owner: -
CREATE UNIQUE INDEX uq_usp_site ON public.user_scope_permissions USING btree (user_id, module_id, action, scope_type, site_id) WHERE (scope_type = 'site'::public.scope_type);

-- auth_sync_state auth_sync_state_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.auth_sync_state
    ADD CONSTRAINT auth_sync_state_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

-- permissions permissions_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.permissions
    ADD CONSTRAINT permissions_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

-- sites sites_company_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.sites
    ADD CONSTRAINT sites_company_id_fkey FOREIGN KEY (company_id) REFERENCES public.companies(id) ON DELETE CASCADE;

-- user_scope_permissions user_scope_permissions_company_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.user_scope_permissions
    ADD CONSTRAINT user_scope_permissions_company_id_fkey FOREIGN KEY (company_id) REFERENCES public.companies(id) ON DELETE CASCADE;

-- user_scope_permissions user_scope_permissions_module_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.user_scope_permissions
    ADD CONSTRAINT user_scope_permissions_module_id_fkey FOREIGN KEY (module_id) REFERENCES public.modules(id) ON DELETE CASCADE;

-- user_scope_permissions user_scope_permissions_site_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.user_scope_permissions
    ADD CONSTRAINT user_scope_permissions_site_id_fkey FOREIGN KEY (site_id) REFERENCES public.sites(id) ON DELETE CASCADE;

-- user_scope_permissions user_scope_permissions_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
ALTER TABLE ONLY public.user_scope_permissions
    ADD CONSTRAINT user_scope_permissions_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--

