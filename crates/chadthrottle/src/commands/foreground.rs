//! Upstream ChadThrottle's form, kept for its users:
//! `chadthrottle --pid 4242 --download-limit 1M --upload-limit 500K [--duration 30]`.
//! Limits in the foreground and lifts the limit on Ctrl+C, SIGTERM, after `--duration`,
//! or when the process exits. With `--duration` the kernel also holds the expiry, so the
//! limit lapses on time even if this command is killed.

use super::limit;
use crate::cli::Global;
use chadthrottle_core::backend::Backend;
use chadthrottle_core::{PerDirection, Rate};
use chadthrottle_kernel::procs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn run(
    global: &Global,
    pid: u32,
    upload: Option<Rate>,
    download: Option<Rate>,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let set = limit::direction_limits(upload, download, None, None, None)
        .map(|_, limit| chadthrottle_core::backend::Change::set_or_keep(*limit));
    let (mut datapath, request, applied) = limit::apply(global, pid, set, duration)?;
    limit::print_applied(&datapath, &request, applied)?;
    let until = duration.map(|duration| Instant::now() + duration);
    let process = request.target.process;
    let reason = loop {
        if stop.load(Ordering::Relaxed) {
            break "interrupted";
        }
        if until.is_some_and(|until| Instant::now() >= until) {
            break "duration elapsed";
        }
        if !procs::is_alive(process.pid, process.start_time) {
            break "process exited";
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    datapath.remove(
        pid,
        PerDirection {
            up: true,
            down: true,
        },
    )?;
    println!("PID {pid}: limit removed ({reason})");
    Ok(())
}
