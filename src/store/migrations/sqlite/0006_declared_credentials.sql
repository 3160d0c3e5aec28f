-- Credentials that [auth] api_keys / basic_users declare (1), and declared keys whose line was
-- removed (2: refused like revoked ones, live again if the line comes back). A declared Basic
-- user whose line is removed is deleted. The configuration is the source of truth for them;
-- keys and users made only with the CLI or the admin page (0) are not touched.
ALTER TABLE api_keys ADD COLUMN declared INTEGER NOT NULL DEFAULT 0;
ALTER TABLE basic_credentials ADD COLUMN declared INTEGER NOT NULL DEFAULT 0;
