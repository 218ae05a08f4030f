CREATE TABLE magic_links (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL,
    created_at REAL NOT NULL
);
CREATE INDEX index_magic_links_on_expires_at ON magic_links (expires_at);
CREATE INDEX index_magic_links_on_email ON magic_links (email);
