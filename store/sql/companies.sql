SELECT id::text, company_key, status::text FROM companies
