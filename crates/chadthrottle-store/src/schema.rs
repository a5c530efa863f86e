//! The database's tables (see the crate's doc for what each holds) and its schema version.

use rusqlite::{Connection, OptionalExtension as _};

/// Bumped when a table changes shape; a database of another version is refused rather
/// than misread.
pub const VERSION: &str = "1";

/// Counter columns shared by the increment tables.
const COUNTERS: &str = "rx_internet INTEGER NOT NULL, tx_internet INTEGER NOT NULL, \
                        rx_local INTEGER NOT NULL, tx_local INTEGER NOT NULL, \
                        rx_packets INTEGER NOT NULL, tx_packets INTEGER NOT NULL";

/// Sets WAL mode and creates what is missing.
pub fn create(connection: &mut Connection) -> rusqlite::Result<()> {
    // WAL: `usage` reads while the daemon writes; NORMAL sync is durable across a crash
    // of the daemon (what matters here), only a power cut may lose the last commits
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    let transaction = connection.transaction()?;
    transaction.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS boots (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         CREATE TABLE IF NOT EXISTS applications (
             id INTEGER PRIMARY KEY, exe TEXT NOT NULL, rule TEXT NOT NULL, UNIQUE (exe, rule));
         CREATE TABLE IF NOT EXISTS processes (
             id INTEGER PRIMARY KEY, boot INTEGER NOT NULL, pid INTEGER NOT NULL,
             start_time INTEGER NOT NULL, name TEXT NOT NULL, app INTEGER NOT NULL,
             user INTEGER NOT NULL, last_seen INTEGER NOT NULL,
             UNIQUE (boot, pid, start_time));
         CREATE TABLE IF NOT EXISTS samples (
             minute INTEGER NOT NULL, process INTEGER NOT NULL, {COUNTERS},
             PRIMARY KEY (minute, process)) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS hourly (
             hour INTEGER NOT NULL, app INTEGER NOT NULL, user INTEGER NOT NULL, {COUNTERS},
             PRIMARY KEY (hour, app, user)) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS daily (
             day INTEGER NOT NULL, app INTEGER NOT NULL, user INTEGER NOT NULL, {COUNTERS},
             PRIMARY KEY (day, app, user)) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS checkpoint (
             pid INTEGER NOT NULL, start_time INTEGER NOT NULL,
             rx_bytes INTEGER NOT NULL, tx_bytes INTEGER NOT NULL,
             rx_packets INTEGER NOT NULL, tx_packets INTEGER NOT NULL,
             PRIMARY KEY (pid, start_time)) WITHOUT ROWID;
         INSERT INTO meta (key, value) VALUES ('version', '{VERSION}') ON CONFLICT DO NOTHING;"
    ))?;
    transaction.commit()
}

/// The schema version the database says it has; an error if it has no tables.
pub fn version(connection: &Connection) -> rusqlite::Result<Option<String>> {
    connection
        .query_row("SELECT value FROM meta WHERE key = 'version'", [], |row| {
            row.get(0)
        })
        .optional()
}
