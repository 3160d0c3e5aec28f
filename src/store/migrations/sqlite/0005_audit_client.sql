-- The address of the client a request came from (behind a trusted proxy: the forwarded
-- client, see [server] trusted_proxies).
ALTER TABLE audit_log ADD COLUMN client_address TEXT;
