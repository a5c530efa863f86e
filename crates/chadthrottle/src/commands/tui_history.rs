//! The TUI's History view read from the daemon's database: the report by application
//! over the range and each application by UTC day, through the store's report queries,
//! the same `usage --by app` and `usage --by day --rule`/`--exe` ask. The database is the
//! one the daemon's configuration names (`--config`, else the default file).

use super::config_file;
use chadthrottle_core::daemon_config::CONFIG_FILE;
use chadthrottle_core::usage_history::{Grouping, since};
use chadthrottle_store::Store;
use chadthrottle_store::report::Query;
use chadthrottle_tui::history::{AppHistory, HistoryAnswer, HistoryRange};
use std::path::Path;

/// What the view shows for `range` at `now` (Unix seconds): the rows, or why there are
/// none — a configuration or database that cannot be read, or no database yet.
pub fn read(config: Option<&Path>, now: u64, range: HistoryRange) -> HistoryAnswer {
    let config = match config_file::load(config) {
        Ok(config) => config,
        Err(error) => {
            let path = config.unwrap_or(Path::new(CONFIG_FILE));
            return HistoryAnswer::Unreadable {
                path: path.display().to_string(),
                error: format!("{error:#}"),
            };
        }
    };
    let path = config.database;
    let unreadable = |error: String| HistoryAnswer::Unreadable {
        path: path.display().to_string(),
        error,
    };
    if !path.exists() {
        return HistoryAnswer::Missing {
            path: path.display().to_string(),
        };
    }
    let store = match Store::open_read_only(&path) {
        Ok(store) => store,
        Err(error) => return unreadable(error.to_string()),
    };
    match report(&store, now, range) {
        Ok(answer) => answer,
        Err(error) => unreadable(format!("{error:#}")),
    }
}

fn report(store: &Store, now: u64, range: HistoryRange) -> anyhow::Result<HistoryAnswer> {
    let query = |by, app| Query {
        since: since(range.since(), now).unwrap_or(now),
        until: now,
        by,
        exe: None,
        app,
    };
    let by_app = store.report(&query(Grouping::App, None))?;
    let mut apps = Vec::with_capacity(by_app.rows.len());
    for totals in by_app.rows {
        let days = store.report(&query(Grouping::Day, totals.app_key()))?.rows;
        apps.push(AppHistory { totals, days });
    }
    Ok(HistoryAnswer::Rows {
        range,
        since: by_app.since,
        until: by_app.until,
        note: by_app.note,
        apps,
    })
}
