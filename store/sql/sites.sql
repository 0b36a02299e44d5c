SELECT id::text, site_key, company_id::text, status::text FROM sites
