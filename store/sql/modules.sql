SELECT id::text, module_key, status::text FROM modules
