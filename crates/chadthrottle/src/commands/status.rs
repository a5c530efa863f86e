//! `chadthrottle status`: every active limit with live counters.

use crate::cli::{Global, StatusArgs};
use crate::render;
use chadthrottle_core::backend::Backend;
use chadthrottle_core::status::{ActiveLimit, LimitStatus, StatusReport};
use chadthrottle_kernel::Datapath;

pub fn run(global: &Global, args: &StatusArgs) -> anyhow::Result<()> {
    let limits: Vec<ActiveLimit> = match Datapath::open(&global.pin_dir)? {
        Some(mut datapath) => {
            datapath.prune()?;
            datapath.limits()?
        }
        None => Vec::new(),
    };
    if args.json {
        let report = StatusReport {
            limits: limits.iter().map(LimitStatus::new).collect(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render::status_table(&limits, super::unix_now()));
    }
    Ok(())
}
