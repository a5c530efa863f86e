//! The usage history on disk: the SQLite database `chadthrottle daemon` writes and
//! `chadthrottle usage` reads. No kernel here: the daemon hands it increments already
//! taken (`chadthrottle_core::tally`), and it answers reports with the ranges the core
//! chooses (`chadthrottle_core::usage_history::ranges`).
//!
//! Schema (version 1, in `meta`):
//!
//! | table | key | holds | kept |
//! |---|---|---|---|
//! | `samples` | minute, process | per-minute, per-process increments | `retention` |
//! | `hourly` | hour, app, user | per-hour increments | `hourly_retention` |
//! | `daily` | day, app, user | per-day increments | for good |
//! | `processes` | id (boot, pid, start time) | name, application, user, last minute seen | while `samples` refer to it |
//! | `applications`, `users`, `boots` | id | the names the rows refer to | for good |
//! | `checkpoint` | pid, start time | the counters accounted so far, in `meta.epoch` | replaced at every write |
//! | `meta` | key | schema version, epoch, how far back `samples` and `hourly` reach | |
//!
//! Each write is one transaction holding the increments of one reading, their rollups
//! and the checkpoint they were taken up to, so a kill at any point leaves either all of
//! it or none (see the core's `tally` for what that guarantees). Counters are columns,
//! not one row per direction: `rx_internet`, `tx_internet`, `rx_local`, `tx_local`,
//! `rx_packets`, `tx_packets`. Times are Unix seconds rounded down to the row's minute,
//! hour or (UTC) day. The database runs in WAL mode, so `usage` reads while the daemon
//! writes.

pub mod report;
mod schema;

use chadthrottle_core::ProcessRef;
use chadthrottle_core::tally::{Checkpoint, Increment, boot_of};
use chadthrottle_core::usage::Counters;
use chadthrottle_core::usage_history::{Application, DAY, HOUR, Kept};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A database operation that failed, with the database and what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("usage database {path}: cannot {op}: {source}")]
    Sqlite {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "usage database {path}: schema version {found} where {known} is known (written by \
         another ChadThrottle?)",
        known = schema::VERSION
    )]
    Version { path: PathBuf, found: String },
}

impl StoreError {
    /// Whether the disk is full or the database cannot be written (read-only file or
    /// file system): the daemon logs these and goes on.
    pub fn is_unwritable(&self) -> bool {
        let StoreError::Sqlite { source, .. } = self else {
            return false;
        };
        matches!(
            source.sqlite_error_code(),
            Some(
                rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::PermissionDenied
            )
        )
    }
}

/// One process's increment with whom it is charged to.
#[derive(Debug, Clone)]
pub struct Sample {
    pub increment: Increment,
    /// The process name (`comm`).
    pub name: String,
    pub application: Application,
    pub user: String,
}

/// What [`Store::prune`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub samples: usize,
    pub hourly: usize,
    pub processes: usize,
}

/// An open usage database.
pub struct Store {
    connection: Connection,
    path: PathBuf,
    /// Ids of names already in the database (they never change once given).
    applications: HashMap<Application, i64>,
    users: HashMap<String, i64>,
}

impl Store {
    /// Opens the database at `path` for writing, creating it (not its directory) and its
    /// tables if missing.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut store = Store::with(path, flags, "open")?;
        schema::create(&mut store.connection).map_err(store.failed("create the tables"))?;
        store.check_version()?;
        Ok(store)
    }

    /// Opens the database at `path` for reading only (`usage`): an error if it does not
    /// exist or has no tables yet.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let store = Store::with(path, flags, "open")?;
        match store.check_version() {
            // A reader of a WAL database needs its shared-memory file, which a reader
            // without write access to the directory cannot create. When no writer has the
            // database open (its WAL file is gone with it), nothing can change under the
            // reader, and SQLite reads the file as immutable without one.
            Err(error) if error.is_unwritable() && !sibling(path, "-wal").exists() => {
                let uri = format!("file:{}?immutable=1", uri_path(path));
                let store = Store::with_target(path, &uri, flags | OpenFlags::SQLITE_OPEN_URI)?;
                store.check_version()?;
                Ok(store)
            }
            checked => checked.map(|()| store),
        }
    }

    /// Refuses a database of another schema version rather than misreading it.
    fn check_version(&self) -> Result<(), StoreError> {
        let version = schema::version(&self.connection).map_err(self.failed("read the schema"))?;
        match version {
            Some(version) if version == schema::VERSION => Ok(()),
            other => Err(StoreError::Version {
                path: self.path.clone(),
                found: other.unwrap_or_else(|| "none".to_owned()),
            }),
        }
    }

    fn with(path: &Path, flags: OpenFlags, op: &'static str) -> Result<Store, StoreError> {
        let failed = |source| StoreError::Sqlite {
            path: path.to_owned(),
            op,
            source,
        };
        let connection = Connection::open_with_flags(path, flags).map_err(failed)?;
        Store::on(path, connection, op)
    }

    /// Opens `path` through `target` (a `file:` URI).
    fn with_target(path: &Path, target: &str, flags: OpenFlags) -> Result<Store, StoreError> {
        let connection =
            Connection::open_with_flags(target, flags).map_err(|source| StoreError::Sqlite {
                path: path.to_owned(),
                op: "open",
                source,
            })?;
        Store::on(path, connection, "open")
    }

    fn on(path: &Path, connection: Connection, op: &'static str) -> Result<Store, StoreError> {
        let failed = |source| StoreError::Sqlite {
            path: path.to_owned(),
            op,
            source,
        };
        // a reader waits for a writer's commit instead of failing at once
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(failed)?;
        Ok(Store {
            connection,
            path: path.to_owned(),
            applications: HashMap::new(),
            users: HashMap::new(),
        })
    }

    fn failed(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + use<> {
        let path = self.path.clone();
        move |source| StoreError::Sqlite {
            path: path.clone(),
            op,
            source,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The counters accounted so far, to resume from; `None` for a new database.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let failed = self.failed("read the checkpoint");
        let epoch: Option<String> = self
            .connection
            .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(&failed)?;
        let Some(epoch) = epoch else {
            return Ok(None);
        };
        let mut statement = self
            .connection
            .prepare(
                "SELECT pid, start_time, rx_bytes, tx_bytes, rx_packets, tx_packets \
                 FROM checkpoint",
            )
            .map_err(&failed)?;
        let counters = statement
            .query_map([], |row| {
                Ok((
                    ProcessRef {
                        pid: row.get(0)?,
                        start_time: counter(row.get(1)?),
                    },
                    Counters {
                        rx_bytes: counter(row.get(2)?),
                        tx_bytes: counter(row.get(3)?),
                        rx_packets: counter(row.get(4)?),
                        tx_packets: counter(row.get(5)?),
                    },
                ))
            })
            .map_err(&failed)?
            .collect::<Result<HashMap<_, _>, _>>()
            .map_err(&failed)?;
        Ok(Some(Checkpoint { epoch, counters }))
    }

    /// Writes the increments of one reading taken at `at` (Unix seconds) and the
    /// checkpoint they were taken up to, in one transaction.
    pub fn record(
        &mut self,
        at: u64,
        samples: &[Sample],
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let failed = self.failed("write a sample");
        let transaction = self.connection.transaction().map_err(&failed)?;
        let boot = name_id(&transaction, "boots", boot_of(&checkpoint.epoch)).map_err(&failed)?;
        let minute = at - at % 60;
        for sample in samples {
            let app = match self.applications.get(&sample.application) {
                Some(&id) => id,
                None => {
                    let id = application_id(&transaction, &sample.application).map_err(&failed)?;
                    self.applications.insert(sample.application.clone(), id);
                    id
                }
            };
            let user = match self.users.get(&sample.user) {
                Some(&id) => id,
                None => {
                    let id = name_id(&transaction, "users", &sample.user).map_err(&failed)?;
                    self.users.insert(sample.user.clone(), id);
                    id
                }
            };
            let process = sample.increment.process;
            let process_id: i64 = transaction
                .prepare_cached(
                    "INSERT INTO processes (boot, pid, start_time, name, app, user, last_seen) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (boot, pid, start_time) DO UPDATE SET \
                     name = excluded.name, app = excluded.app, user = excluded.user, \
                     last_seen = excluded.last_seen RETURNING id",
                )
                .and_then(|mut statement| {
                    statement.query_row(
                        params![
                            boot,
                            process.pid,
                            column(process.start_time),
                            sample.name,
                            app,
                            user,
                            column(minute)
                        ],
                        |row| row.get(0),
                    )
                })
                .map_err(&failed)?;
            let counters = counters_of(&sample.increment);
            add(
                &transaction,
                "samples",
                "minute",
                "process",
                minute,
                process_id,
                None,
                &counters,
            )
            .map_err(&failed)?;
            add(
                &transaction,
                "hourly",
                "hour",
                "app",
                at - at % HOUR,
                app,
                Some(user),
                &counters,
            )
            .map_err(&failed)?;
            add(
                &transaction,
                "daily",
                "day",
                "app",
                at - at % DAY,
                app,
                Some(user),
                &counters,
            )
            .map_err(&failed)?;
        }
        transaction
            .execute("DELETE FROM checkpoint", [])
            .map_err(&failed)?;
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO checkpoint \
                     (pid, start_time, rx_bytes, tx_bytes, rx_packets, tx_packets) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(&failed)?;
            for (process, counters) in &checkpoint.counters {
                insert
                    .execute(params![
                        process.pid,
                        column(process.start_time),
                        column(counters.rx_bytes),
                        column(counters.tx_bytes),
                        column(counters.rx_packets),
                        column(counters.tx_packets)
                    ])
                    .map_err(&failed)?;
            }
        }
        transaction
            .execute(
                "INSERT INTO meta (key, value) VALUES ('epoch', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [&checkpoint.epoch],
            )
            .map_err(&failed)?;
        transaction.commit().map_err(&failed)
    }

    /// Drops per-minute rows older than `retention` and hourly rows older than
    /// `hourly_retention` before `now`, at hour and day boundaries so that the coarser
    /// rows answer exactly for the time the finer ones no longer cover.
    pub fn prune(
        &mut self,
        now: u64,
        retention: Duration,
        hourly_retention: Duration,
    ) -> Result<Pruned, StoreError> {
        let failed = self.failed("drop old rows");
        let before = |keep: Duration, unit: u64| {
            let at = now.saturating_sub(keep.as_secs());
            at - at % unit
        };
        let kept = self.kept()?;
        let minutes_from = before(retention, HOUR).max(kept.minutes_from);
        let hours_from = before(hourly_retention, DAY).max(kept.hours_from);
        let transaction = self.connection.transaction().map_err(&failed)?;
        let samples = transaction
            .execute(
                "DELETE FROM samples WHERE minute < ?1",
                [column(minutes_from)],
            )
            .map_err(&failed)?;
        let hourly = transaction
            .execute("DELETE FROM hourly WHERE hour < ?1", [column(hours_from)])
            .map_err(&failed)?;
        let processes = transaction
            .execute(
                "DELETE FROM processes WHERE last_seen < ?1",
                [column(minutes_from)],
            )
            .map_err(&failed)?;
        for (key, value) in [("minutes_from", minutes_from), ("hours_from", hours_from)] {
            transaction
                .execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![key, value.to_string()],
                )
                .map_err(&failed)?;
        }
        transaction.commit().map_err(&failed)?;
        Ok(Pruned {
            samples,
            hourly,
            processes,
        })
    }

    /// How far back the per-minute and hourly rows reach.
    pub fn kept(&self) -> Result<Kept, StoreError> {
        let failed = self.failed("read the retention marks");
        let read = |key: &str| -> Result<u64, StoreError> {
            let value: Option<String> = self
                .connection
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(&failed)?;
            Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
        };
        Ok(Kept {
            minutes_from: read("minutes_from")?,
            hours_from: read("hours_from")?,
        })
    }

    /// The database file's size in bytes as SQLite sees it (pages × page size; the WAL
    /// file aside).
    pub fn size(&self) -> Result<u64, StoreError> {
        let failed = self.failed("read the database size");
        let pages: i64 = self
            .connection
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .map_err(&failed)?;
        let page_size: i64 = self
            .connection
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .map_err(&failed)?;
        Ok(counter(pages.saturating_mul(page_size)))
    }

    /// Moves the WAL's content into the database file, so that the file's size is the
    /// database's (for measuring it).
    pub fn checkpoint_wal(&self) -> Result<(), StoreError> {
        self.connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(self.failed("checkpoint the WAL"))
    }

    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
    }
}

/// `path` with `suffix` appended to its file name (`usage.db-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `path` as the path of a `file:` URI: the characters a URI gives a meaning to, and
/// every byte beyond ASCII, escaped (SQLite decodes `%HH`).
fn uri_path(path: &Path) -> String {
    let mut encoded = String::new();
    for &byte in path.as_os_str().as_encoded_bytes() {
        if byte.is_ascii() && !matches!(byte, b'%' | b'?' | b'#') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// SQLite integers are signed 64-bit: counters beyond `i64::MAX` (never reached in
/// practice: 8 EiB) are stored as the maximum rather than wrapping negative.
fn column(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored integer back as a counter (never negative as written).
fn counter(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The six counter columns of an increment, in table order.
fn counters_of(increment: &Increment) -> [i64; 6] {
    [
        column(increment.internet.rx_bytes),
        column(increment.internet.tx_bytes),
        column(increment.local.rx_bytes),
        column(increment.local.tx_bytes),
        column(increment.rx_packets),
        column(increment.tx_packets),
    ]
}

/// Adds `counters` to the row of `table` at (`time`, `id`[, `user`]), creating it.
#[expect(
    clippy::too_many_arguments,
    reason = "the three tables share one statement shape; a struct would only rename them"
)]
fn add(
    connection: &Connection,
    table: &str,
    time_column: &str,
    id_column: &str,
    time: u64,
    id: i64,
    user: Option<i64>,
    counters: &[i64; 6],
) -> rusqlite::Result<()> {
    let (user_column, user_value) = match user {
        Some(_) => (", user", ", ?9"),
        None => ("", ""),
    };
    let key = format!("{time_column}, {id_column}{user_column}");
    let sql = format!(
        "INSERT INTO {table} ({key}, rx_internet, tx_internet, rx_local, tx_local, \
         rx_packets, tx_packets) VALUES (?1, ?2{user_value}, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT ({key}) DO UPDATE SET \
         rx_internet = rx_internet + excluded.rx_internet, \
         tx_internet = tx_internet + excluded.tx_internet, \
         rx_local = rx_local + excluded.rx_local, tx_local = tx_local + excluded.tx_local, \
         rx_packets = rx_packets + excluded.rx_packets, \
         tx_packets = tx_packets + excluded.tx_packets"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let [a, b, c, d, e, f] = *counters;
    match user {
        Some(user) => statement.execute(params![column(time), id, a, b, c, d, e, f, user])?,
        None => statement.execute(params![column(time), id, a, b, c, d, e, f])?,
    };
    Ok(())
}

/// The id of `name` in a names table (`users`, `boots`), added if new.
fn name_id(connection: &Connection, table: &str, name: &str) -> rusqlite::Result<i64> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO {table} (name) VALUES (?1) \
             ON CONFLICT (name) DO UPDATE SET name = name RETURNING id"
        ))?
        .query_row([name], |row| row.get(0))
}

/// The id of `application`, added if new (no rule is stored as '', so that UNIQUE holds).
fn application_id(connection: &Connection, application: &Application) -> rusqlite::Result<i64> {
    connection
        .prepare_cached(
            "INSERT INTO applications (exe, rule) VALUES (?1, ?2) \
             ON CONFLICT (exe, rule) DO UPDATE SET exe = exe RETURNING id",
        )?
        .query_row(
            params![application.exe, application.rule.as_deref().unwrap_or("")],
            |row| row.get(0),
        )
}

#[cfg(test)]
mod tests;
