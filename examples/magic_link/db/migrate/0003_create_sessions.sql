-- Signed-in browsers, one row per sign-in. The session cookie holds a random token and this table its
-- SHA-256, so signing out (deleting the row) ends the session for every copy of the cookie, and a leak of this
-- table gives no one a cookie that works.
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    token_digest TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX index_sessions_on_expires_at ON sessions (expires_at);
CREATE INDEX index_sessions_on_email ON sessions (email);
