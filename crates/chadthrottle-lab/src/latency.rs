//! The latency probe: what a limited bulk transfer does to another, unlimited process's
//! round trips. An `echo` endpoint in the server namespace and a client endpoint in the
//! client namespace (in the lab's cgroup, never limited) exchange 64 bytes each way every
//! 5 ms on a connection of their own; the benchmark compares the round trips measured
//! alone with those measured during the transfer.

use crate::endpoint::Endpoint;
use crate::protocol::{ProbeReport, Sample};
use crate::stats::quantile;
use crate::{Family, Lab, Proto};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Bytes of each request and each answer.
const MESSAGE: usize = 64;
/// A new exchange starts this long after the previous one started (or at once, if that
/// one took longer).
const INTERVAL_NS: u64 = 5_000_000;
/// An answer later than this ends the probe (a queue that deep is reported as such).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends back whatever `stream` receives until the peer closes (the `echo` role).
pub(crate) fn echo(mut stream: TcpStream) {
    let mut buffer = [0; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 || stream.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
}

/// Exchanges with the echo server at `addr` for `seconds` (the `probe` command).
pub(crate) fn exchange(addr: SocketAddr, seconds: f64) -> ProbeReport {
    let mut report = ProbeReport::default();
    if let Err(error) = exchange_into(addr, seconds, &mut report.samples) {
        report.error = Some(error.to_string());
    }
    report
}

fn exchange_into(addr: SocketAddr, seconds: f64, samples: &mut Vec<Sample>) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let request = [0x5a; MESSAGE];
    let mut answer = [0; MESSAGE];
    let end_by = crate::now_ns() + (seconds * 1e9) as u64;
    loop {
        let at_ns = crate::now_ns();
        if at_ns >= end_by {
            return Ok(());
        }
        stream.write_all(&request)?;
        stream.read_exact(&mut answer)?;
        let done_ns = crate::now_ns();
        samples.push(Sample {
            at_ns,
            rtt_ns: done_ns - at_ns,
        });
        let next_ns = at_ns + INTERVAL_NS;
        if next_ns > done_ns {
            std::thread::sleep(Duration::from_nanos(next_ns - done_ns));
        }
    }
}

/// How much a transfer added to the probe's round trips, in ns: the median and the 99th
/// percentile during it, each less the median alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extra {
    /// The median round trip alone (the base of both figures).
    pub alone_ns: u64,
    pub median_ns: i64,
    pub p99_ns: i64,
    /// Exchanges measured during the transfer.
    pub samples: usize,
}

/// The extra latency of a probe run `during` a transfer, counting the exchanges that
/// started in `[start_ns, end_ns)`, over one run `alone`; why there is no figure otherwise.
pub fn measure(
    alone: &ProbeReport,
    during: &ProbeReport,
    start_ns: u64,
    end_ns: u64,
) -> Result<Extra, String> {
    for (when, report) in [("alone", alone), ("during the transfer", during)] {
        if let Some(error) = &report.error {
            return Err(format!("probe {when} stopped: {error}"));
        }
    }
    extra(&alone.samples, &within(&during.samples, start_ns, end_ns))
        .ok_or_else(|| "no probe exchange completed in the steady state".to_owned())
}

/// The extra latency of `during` over `alone`; `None` if either has no sample.
fn extra(alone: &[Sample], during: &[Sample]) -> Option<Extra> {
    let rtts = |samples: &[Sample]| samples.iter().map(|s| s.rtt_ns).collect::<Vec<_>>();
    let alone_ns = quantile(&rtts(alone), 0.5)?;
    let during_rtts = rtts(during);
    let less_alone = |rtt: u64| rtt as i64 - alone_ns as i64;
    Some(Extra {
        alone_ns,
        median_ns: less_alone(quantile(&during_rtts, 0.5)?),
        p99_ns: less_alone(quantile(&during_rtts, 0.99)?),
        samples: during.len(),
    })
}

/// The samples of exchanges that started inside `[start_ns, end_ns)`.
fn within(samples: &[Sample], start_ns: u64, end_ns: u64) -> Vec<Sample> {
    samples
        .iter()
        .filter(|s| (start_ns..end_ns).contains(&s.at_ns))
        .copied()
        .collect()
}

/// A running probe: the echo server and the probing client.
pub struct Probe {
    server: Endpoint,
    client: Endpoint,
}

impl Probe {
    pub fn start(lab: &Lab, family: Family) -> anyhow::Result<Probe> {
        let server = lab.echo_server(family)?;
        let client = lab.client(&server, Proto::Tcp, None, None)?;
        Ok(Probe { server, client })
    }

    /// Starts probing for `seconds` without waiting; pair with [`Probe::finish`].
    pub fn begin(&mut self, seconds: f64) -> anyhow::Result<()> {
        self.client.start_probe(seconds)
    }

    pub fn finish(&mut self) -> anyhow::Result<ProbeReport> {
        self.client.finish_probe()
    }

    pub fn run(&mut self, seconds: f64) -> anyhow::Result<ProbeReport> {
        self.begin(seconds)?;
        self.finish()
    }

    pub fn quit(self) -> anyhow::Result<()> {
        self.client.quit()?;
        self.server.quit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(rtts_us: &[u64]) -> Vec<Sample> {
        rtts_us
            .iter()
            .enumerate()
            .map(|(i, &us)| Sample {
                at_ns: i as u64 * INTERVAL_NS,
                rtt_ns: us * 1000,
            })
            .collect()
    }

    #[test]
    fn extra_is_measured_from_the_median_alone() {
        let alone = samples(&[40, 50, 60]);
        // nearest rank: of 100 exchanges the 99th slowest is the 99th percentile
        let mut during_us = vec![100; 98];
        during_us.extend([2050, 2050]);
        let extra = extra(&alone, &samples(&during_us)).expect("samples on both sides");
        assert_eq!(extra.alone_ns, 50_000);
        assert_eq!(extra.median_ns, 50_000);
        assert_eq!(extra.p99_ns, 2_000_000);
        assert_eq!(extra.samples, 100);
    }

    #[test]
    fn extra_can_be_negative_and_needs_samples() {
        let alone = samples(&[100, 100]);
        let extra_ns = extra(&alone, &samples(&[90])).map(|e| e.median_ns);
        assert_eq!(extra_ns, Some(-10_000));
        assert_eq!(extra(&alone, &[]), None);
        assert_eq!(extra(&[], &alone), None);
    }

    #[test]
    fn measure_counts_the_window_and_reports_a_stopped_probe() {
        let report = |rtts_us: &[u64]| ProbeReport {
            samples: samples(rtts_us),
            error: None,
        };
        let alone = report(&[50]);
        // exchanges start every 5 ms: the window [5, 15) ms holds the second and third
        let during = report(&[9000, 150, 150, 9000]);
        let measured = measure(&alone, &during, INTERVAL_NS, 3 * INTERVAL_NS);
        assert_eq!(measured.map(|e| (e.median_ns, e.samples)), Ok((100_000, 2)));
        assert!(measure(&alone, &during, 1, 2).is_err());
        let stopped = ProbeReport {
            error: Some("timed out".to_owned()),
            ..report(&[1])
        };
        let reason = measure(&alone, &stopped, 0, u64::MAX).expect_err("stopped");
        assert_eq!(reason, "probe during the transfer stopped: timed out");
    }

    #[test]
    fn within_keeps_exchanges_started_in_the_window() {
        let all = samples(&[1, 2, 3, 4]);
        let kept = within(&all, INTERVAL_NS, 3 * INTERVAL_NS);
        assert_eq!(kept, all[1..3].to_vec());
    }
}
