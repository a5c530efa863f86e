//! `chadthrottle daemon` run in a lab, as the usage-history test and the benchmark run it:
//! a private configuration (its database, its log and a metrics port the system picks, in
//! a temporary directory), started confined to the lab, stopped with SIGTERM as systemd
//! stops it or killed with SIGKILL, its endpoint scraped, its `usage` read and its CPU
//! time taken from /proc.

use crate::Lab;
use anyhow::{Context as _, bail, ensure};
use serde_json::Value;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the daemon logs once its datapath is installed (or found installed), before its
/// first sample.
const STARTED: &str = "chadthrottle daemon: sampling every ";

/// What the daemon logs once it has installed the datapath again after a `reset`.
pub const INSTALLED_AGAIN: &str = "chadthrottle daemon: the datapath is installed again (";

/// The first sample follows the install at once; this is long enough for it.
const FIRST_SAMPLE: Duration = Duration::from_millis(500);

/// How long installing the datapath may take on a loaded machine (it took over a second on
/// a slow one, and CI runs other work beside the tests).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A daemon's configuration and log, kept across its starts; removed on drop.
pub struct DaemonSetup {
    binary: PathBuf,
    dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl DaemonSetup {
    /// A configuration for `binary` (the `chadthrottle` executable) sampling every
    /// `interval` (`"1s"`, `"10s"`) into a database of its own, metrics on 127.0.0.1.
    pub fn new(binary: &Path, interval: &str) -> anyhow::Result<DaemonSetup> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "interval = \"{interval}\"\ndatabase = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
                dir.path().join("usage.db").display()
            ),
        )?;
        Ok(DaemonSetup {
            binary: binary.to_owned(),
            log: dir.path().join("daemon.log"),
            dir,
            config,
        })
    }

    /// Starts the daemon confined to `lab`, appending to the log, and waits until it has
    /// the datapath installed (its log says so) and for its first sample.
    pub fn start(&self, lab: &Lab) -> anyhow::Result<Daemon> {
        let earlier = logged(&self.log_text(), STARTED);
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.binary)
            .args(["daemon", "--config"])
            .arg(&self.config)
            .args(["--rules", "/nonexistent/rules.toml"])
            .envs(lab.env())
            .stdout(output.try_clone()?)
            .stderr(output)
            .stdin(Stdio::null())
            .spawn()
            .context("start the daemon")?;
        let mut daemon = Daemon { child: Some(child) };
        self.wait_for_log(&mut daemon, STARTED, earlier + 1)?;
        std::thread::sleep(FIRST_SAMPLE);
        Ok(daemon)
    }

    /// Waits until the log holds `line` (the start of a log line) `count` times, while
    /// `daemon` runs; fails with the log if it exits or takes longer than a loaded machine
    /// needs.
    pub fn wait_for_log(
        &self,
        daemon: &mut Daemon,
        line: &str,
        count: usize,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let text = self.log_text();
            if logged(&text, line) >= count {
                return Ok(());
            }
            if let Some(status) = daemon.child()?.try_wait()? {
                daemon.child = None;
                bail!("the daemon exited with {status} before logging {line:?}:\n{text}");
            }
            ensure!(
                Instant::now() < deadline,
                "the daemon did not log {line:?} within {READY_WITHIN:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the daemon logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The database's directory (the database and its WAL).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The running daemon's metrics: the address is the last one its log names (it listens
    /// on a port the system picks); the answer's body.
    pub fn scrape(&self) -> anyhow::Result<String> {
        let text = std::fs::read_to_string(&self.log)?;
        let address = text
            .lines()
            .rev()
            .find_map(|line| line.split("metrics on http://").nth(1))
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .with_context(|| format!("the daemon's log names no metrics address:\n{text}"))?;
        let mut stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .with_context(|| format!("not an HTTP answer: {answer}"))?;
        ensure!(
            head.starts_with("HTTP/1.1 200"),
            "the scrape answered {head}"
        );
        Ok(body.to_owned())
    }

    /// The `usage --by process` row of `pid` over the last `since` (`"1h"`), read by the
    /// binary as a user runs it.
    pub fn usage_of(&self, lab: &Lab, pid: u32, since: &str) -> anyhow::Result<Value> {
        let output = Command::new(&self.binary)
            .arg("usage")
            .arg("--config")
            .arg(&self.config)
            .args(["--since", since, "--by", "process", "--json"])
            .envs(lab.env())
            .output()?;
        ensure!(
            output.status.success(),
            "chadthrottle usage: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let report: Value = serde_json::from_slice(&output.stdout)?;
        report["rows"]
            .as_array()
            .context("rows is an array")?
            .iter()
            .find(|row| row["pid"] == pid)
            .cloned()
            .with_context(|| format!("PID {pid} is not in the usage report: {report}"))
    }
}

/// How many lines of the log `text` start with `line`.
fn logged(text: &str, line: &str) -> usize {
    text.lines()
        .filter(|logged| logged.starts_with(line))
        .count()
}

/// The value of the unlabelled metric `name` in a scrape's text.
pub fn metric(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A running daemon; killed and reaped on drop if still running.
pub struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    fn child(&mut self) -> anyhow::Result<&mut Child> {
        self.child.as_mut().context("the daemon was stopped")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the daemon with SIGTERM (as systemd does) and waits for it; it must exit
    /// successfully within 10 s.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let child = self.child()?;
        let pid = libc::pid_t::try_from(child.id())?;
        // SAFETY: kill(2) on the PID of a child we started and have not reaped
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        ensure!(
            sent == 0,
            "SIGTERM to the daemon: {}",
            std::io::Error::last_os_error()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                ensure!(status.success(), "the daemon exited with {status}");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("the daemon did not stop within 10 s of SIGTERM")
    }

    /// Kills the daemon with SIGKILL (`kill -9`) and reaps it.
    pub fn kill(mut self) -> anyhow::Result<()> {
        let child = self.child()?;
        child.kill()?;
        child.wait()?;
        self.child = None;
        Ok(())
    }

    /// The CPU time (user + system) the daemon used so far, from /proc/PID/stat.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let pid = self.pid().context("the daemon was stopped")?;
        Ok(Duration::from_secs_f64(
            crate::machine_cpu::process_seconds(pid)?,
        ))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _gone = child.kill();
            let _reaped = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_reads_an_unlabelled_sample_only() {
        let text = "# TYPE x counter\nx_total{a=\"b\"} 3\nx_total 7\nx_total_more 9\n";
        assert_eq!(metric(text, "x_total"), Some(7.0));
        assert_eq!(metric(text, "y_total"), None);
    }
}
