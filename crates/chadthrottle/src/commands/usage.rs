//! `chadthrottle usage`: the usage history the daemon keeps, read from its database (no
//! root needed where the database is readable), as a table or JSON.

use super::config_file;
use crate::cli::{UsageArgs, UsageBy};
use crate::usage_view;
use chadthrottle_core::application::{AppKey, KeyKind};
use chadthrottle_core::system::System;
use chadthrottle_core::usage_history::{Grouping, since};
use chadthrottle_store::Store;
use chadthrottle_store::report::Query;
use std::io::Write;

pub fn run<S: System>(system: &S, args: &UsageArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let config = config_file::load(args.config.as_deref())?;
    let until = system.now_unix();
    let query = Query {
        since: since(&args.since, until)?,
        until,
        by: match args.by {
            UsageBy::App => Grouping::App,
            UsageBy::Process => Grouping::Process,
            UsageBy::User => Grouping::User,
            UsageBy::Day => Grouping::Day,
        },
        exe: args.exe.clone(),
        app: args.rule.clone().map(|key| AppKey {
            kind: KeyKind::Rule,
            key,
        }),
    };
    let store = Store::open_read_only(&config.database).map_err(|error| {
        // the hint that helps: a caller outside the database's group needs the group, not
        // a daemon (SQLite says only "unable to open database file" for both)
        let refused = std::fs::File::open(&config.database)
            .is_err_and(|open| open.kind() == std::io::ErrorKind::PermissionDenied);
        if refused {
            anyhow::anyhow!(
                "{error}: permission denied (reading it takes membership of the group that \
                 owns it, `chadthrottle` where the package installed it)"
            )
        } else {
            anyhow::anyhow!("{error} (is `chadthrottle daemon` running, with this database?)")
        }
    })?;
    let report = store.report(&query)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", usage_view::table(&report))?;
    }
    Ok(out.flush()?)
}
