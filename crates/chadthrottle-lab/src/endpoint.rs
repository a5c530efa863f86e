//! A lab endpoint as a test or the benchmark drives it: one handle per endpoint process
//! (the traffic generator, `generator`), which sends it commands and reads its answers.

use crate::protocol::{EndpointArgs, ProbeReport, Ready, Reply, SendReport, UdpQueues};
use crate::spawn::{Child, Placement, spawn};
use crate::stats::{Bins, Summary, summarize};
use anyhow::{Context as _, bail};
use std::io::{BufRead, BufReader, Write};

/// A running endpoint process.
#[derive(Debug)]
pub struct Endpoint {
    child: Child,
    reader: BufReader<std::fs::File>,
    pub ready: Ready,
}

impl Endpoint {
    /// Starts an endpoint with `args` at `placement` and waits until it is connected (or
    /// listening).
    pub fn start(args: &EndpointArgs, placement: &Placement<'_>) -> anyhow::Result<Endpoint> {
        let child = spawn(&args.to_args(), placement).context("cannot start a lab endpoint")?;
        let reader = BufReader::new(child.stdout.try_clone()?);
        let mut endpoint = Endpoint {
            child,
            reader,
            ready: Ready {
                pid: 0,
                addr: args.addr,
            },
        };
        match endpoint.reply()? {
            Reply::Ready(ready) => endpoint.ready = ready,
            other => bail!("endpoint said {other:?} instead of ready"),
        }
        Ok(endpoint)
    }

    pub const fn pid(&self) -> u32 {
        self.child.pid
    }

    fn command(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.child.stdin, "{line}")
            .with_context(|| format!("endpoint {} is gone", self.pid()))
    }

    fn reply(&mut self) -> anyhow::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("endpoint {} exited", self.pid());
        }
        serde_json::from_str(&line)
            .with_context(|| format!("endpoint {} said {line:?}", self.pid()))
    }

    /// Starts sending for `seconds` (at most `max_bytes`) without waiting; pair with
    /// [`Endpoint::finish_send`].
    pub fn start_send(&mut self, seconds: f64, max_bytes: u64) -> anyhow::Result<()> {
        self.command(&format!("send {seconds} {max_bytes}"))
    }

    pub fn finish_send(&mut self) -> anyhow::Result<SendReport> {
        match self.reply()? {
            Reply::Sent(report) => Ok(report),
            other => bail!("endpoint said {other:?} instead of sent"),
        }
    }

    pub fn send(&mut self, seconds: f64, max_bytes: u64) -> anyhow::Result<SendReport> {
        self.start_send(seconds, max_bytes)?;
        self.finish_send()
    }

    /// Like [`Endpoint::start_send`], but on every connection at once, a thread each,
    /// once `connections` are there (a listening side waits for its accepts); the report
    /// sums them. Pair with [`Endpoint::finish_send`].
    pub fn start_send_all(
        &mut self,
        seconds: f64,
        max_bytes: u64,
        connections: usize,
    ) -> anyhow::Result<()> {
        self.command(&format!("send_all {seconds} {max_bytes} {connections}"))
    }

    /// Starts the latency probe (connecting side, against an echo endpoint) for
    /// `seconds`; pair with [`Endpoint::finish_probe`].
    pub fn start_probe(&mut self, seconds: f64) -> anyhow::Result<()> {
        self.command(&format!("probe {seconds}"))
    }

    pub fn finish_probe(&mut self) -> anyhow::Result<ProbeReport> {
        match self.reply()? {
            Reply::Probed(report) => Ok(report),
            other => bail!("endpoint said {other:?} instead of probed"),
        }
    }

    /// Received bytes per 100 ms bin so far.
    pub fn bins(&mut self) -> anyhow::Result<Bins> {
        self.command("bins")?;
        match self.reply()? {
            Reply::Bins(bins) => Ok(bins),
            other => bail!("endpoint said {other:?} instead of bins"),
        }
    }

    /// What this endpoint's UDP sockets' receive queues hold, and what the kernel dropped
    /// at them so far.
    pub fn udp_queues(&mut self) -> anyhow::Result<UdpQueues> {
        self.command("udp_queues")?;
        match self.reply()? {
            Reply::UdpQueues(queues) => Ok(queues),
            other => bail!("endpoint said {other:?} instead of udp_queues"),
        }
    }

    /// Waits (at most `timeout`) until this endpoint has read every datagram its UDP
    /// sockets queued (a receiver kept off the CPU reads them late); returns what it read
    /// in all, and the queues' state then.
    pub fn udp_read_all(
        &mut self,
        timeout: std::time::Duration,
    ) -> anyhow::Result<(u64, UdpQueues)> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let queues = self.udp_queues()?;
            if queues.queued == 0 {
                // a datagram taken off the queue is counted a moment later
                std::thread::sleep(std::time::Duration::from_millis(300));
                let read = self.bins()?.bytes.iter().sum();
                return Ok((read, queues));
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{} B still queued after {timeout:?}",
                queues.queued
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// What this receiving endpoint got of the transfer `report` describes, from
    /// `warmup_ns` after its start to its end (after a moment for the last bins to land).
    pub fn received_steady(
        &mut self,
        report: &SendReport,
        warmup_ns: u64,
    ) -> anyhow::Result<Summary> {
        std::thread::sleep(std::time::Duration::from_millis(150));
        let bins = self.bins()?;
        Ok(summarize(
            &bins.between(report.start_ns + warmup_ns, report.end_ns),
        ))
    }

    /// Waits (at most `timeout`) until this receiving endpoint has read every byte of the
    /// transfer `report` describes: the sender's socket may still hold some when its
    /// writes end, and a test that changes the connection must not race that tail.
    pub fn wait_received(
        &mut self,
        report: &SendReport,
        timeout: std::time::Duration,
    ) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let received: u64 = self.bins()?.bytes.iter().sum();
            if received >= report.bytes {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "received {received} of {} bytes after {timeout:?}",
                report.bytes
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Opens one more connection (connecting side); later sends use it.
    pub fn open(&mut self) -> anyhow::Result<()> {
        self.command("open")?;
        match self.reply()? {
            Reply::Opened(_) => Ok(()),
            other => bail!("endpoint said {other:?} instead of opened"),
        }
    }

    /// Opens and closes `count` short TCP connections (connecting side); returns how many
    /// connected.
    pub fn churn(&mut self, count: u64) -> anyhow::Result<u64> {
        self.command(&format!("churn {count}"))?;
        match self.reply()? {
            Reply::Churned(connected) => Ok(connected),
            other => bail!("endpoint said {other:?} instead of churned"),
        }
    }

    /// Caps the pacing rate of the endpoint's TCP connections at `rate` bytes per second,
    /// as an application that wants no more than that would: a flow at a set rate, which
    /// a busy CPU does not slow (unlike one that takes all it can).
    pub fn pace(&mut self, rate: u64) -> anyhow::Result<()> {
        self.command(&format!("pace {rate}"))?;
        match self.reply()? {
            Reply::Paced(_) => Ok(()),
            other => bail!("endpoint said {other:?} instead of paced"),
        }
    }

    /// Renames the endpoint process (its `comm`); returns the name the kernel keeps.
    pub fn rename(&mut self, name: &str) -> anyhow::Result<String> {
        self.command(&format!("rename {name}"))?;
        match self.reply()? {
            Reply::Renamed(name) => Ok(name),
            other => bail!("endpoint said {other:?} instead of renamed"),
        }
    }

    /// Makes the endpoint process user `uid`'s for good; returns its real uid then.
    pub fn become_user(&mut self, uid: u32) -> anyhow::Result<u32> {
        self.command(&format!("setuid {uid}"))?;
        match self.reply()? {
            Reply::UidSet(uid) => Ok(uid),
            other => bail!("endpoint said {other:?} instead of its uid"),
        }
    }

    /// Runs a short-lived thread in the endpoint.
    pub fn run_thread(&mut self) -> anyhow::Result<()> {
        self.command("thread")?;
        match self.reply()? {
            Reply::ThreadDone => Ok(()),
            other => bail!("endpoint said {other:?} instead of thread_done"),
        }
    }

    /// Asks the endpoint to exit and reaps it.
    pub fn quit(mut self) -> anyhow::Result<()> {
        self.command("quit")?;
        self.child.wait()?;
        Ok(())
    }
}
