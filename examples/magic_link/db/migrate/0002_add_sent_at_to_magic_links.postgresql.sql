-- When SendMagicLinkEmailJob handed the email to the mail server (the "check your inbox" page shows it).
ALTER TABLE magic_links ADD COLUMN sent_at double precision;
CREATE INDEX index_magic_links_on_used_at ON magic_links (used_at);
