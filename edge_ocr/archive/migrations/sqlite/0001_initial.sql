-- The archive's tables (SQLite). Times are Unix seconds; JSON is stored as text.
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    status TEXT,
    status_ts REAL,
    health TEXT,
    health_ts REAL
);
-- Every message with a msg_id, once: QoS 1 duplicates stop here. too_large: the notice's JSON.
CREATE TABLE messages (
    msg_id TEXT PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    kind TEXT NOT NULL,
    seq INTEGER,
    ts REAL,
    received_ts REAL NOT NULL,
    too_large TEXT
);
CREATE INDEX messages_received ON messages(received_ts);
CREATE TABLE lessons (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    title TEXT NOT NULL,
    start_ts REAL NOT NULL,
    end_ts REAL NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    ended_by TEXT,
    versions INTEGER NOT NULL DEFAULT 0,
    erases INTEGER NOT NULL DEFAULT 0,
    max_lines INTEGER NOT NULL DEFAULT 0,
    state TEXT  -- the open lesson's derivation state (edge_ocr.archive.lessons.State); NULL once ended
);
CREATE INDEX lessons_device ON lessons(device_id, first_seq);
CREATE INDEX lessons_start ON lessons(start_ts);
CREATE TABLE versions (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    msg_id TEXT NOT NULL,
    lesson_id INTEGER REFERENCES lessons(id) ON DELETE SET NULL,
    text TEXT NOT NULL,
    lines TEXT NOT NULL,
    n_lines INTEGER NOT NULL,
    truncated TEXT,
    UNIQUE (device_id, seq)
);
CREATE INDEX versions_lesson ON versions(lesson_id, seq);
CREATE TABLE spans (
    id INTEGER PRIMARY KEY,
    lesson_id INTEGER NOT NULL REFERENCES lessons(id) ON DELETE CASCADE,
    device_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    first_version INTEGER NOT NULL,
    last_version INTEGER,  -- NULL while on the open lesson's board (its state says where)
    added_ts REAL NOT NULL,
    removed_ts REAL,
    replaces INTEGER,
    box TEXT
);
CREATE INDEX spans_lesson ON spans(lesson_id);
CREATE TABLE erases (
    id INTEGER PRIMARY KEY,
    lesson_id INTEGER NOT NULL REFERENCES lessons(id) ON DELETE CASCADE,
    ts REAL NOT NULL,
    fullest_version INTEGER NOT NULL,
    after_version INTEGER NOT NULL,
    removed INTEGER NOT NULL
);
CREATE INDEX erases_lesson ON erases(lesson_id);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    msg_id TEXT NOT NULL,
    event TEXT NOT NULL,
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    previous TEXT,
    box TEXT,
    confidence REAL
);
CREATE INDEX events_device ON events(device_id, ts);
-- Board pictures, content-addressed: an unchanged board is one row however often it is sent.
CREATE TABLE pictures (
    sha256 TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    width INTEGER,
    height INTEGER,
    first_ts REAL NOT NULL
);
CREATE TABLE snapshots (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    seq INTEGER NOT NULL,
    page_seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    sha256 TEXT NOT NULL REFERENCES pictures(sha256)
);
CREATE INDEX snapshots_page ON snapshots(device_id, page_seq);
CREATE INDEX snapshots_picture ON snapshots(sha256);
-- Search terms (edge_ocr.archive.search): CJK unigrams and bigrams, Latin words; one B-tree.
CREATE TABLE terms (
    term TEXT NOT NULL,
    span_id INTEGER NOT NULL,
    PRIMARY KEY (term, span_id)
) WITHOUT ROWID;
