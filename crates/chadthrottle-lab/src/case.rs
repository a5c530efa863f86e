//! A benchmark case — one limited flow — and what one run of it measured.

use crate::latency::Extra;
use crate::stats::Summary;
use chadthrottle_core::Direction;
use chadthrottle_core::status::Enforcement;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Case {
    pub direction: Direction,
    /// Bytes per second.
    pub rate: u64,
    /// Bytes; `None`: the default for the rate.
    pub burst: Option<u64>,
    pub cc: &'static str,
    pub seconds: f64,
    /// Idle time between setting the limit and the transfer (lets the bucket fill).
    pub idle: Duration,
    pub enforcement: Enforcement,
    /// TCP connections of the client, all carrying the transfer at once.
    pub connections: usize,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// Over the whole transfer, from its first byte.
    pub whole: Summary,
    /// After the warm-up.
    pub steady: Summary,
    pub retransmits: u64,
    /// Packets the policer dropped (`None`: not limited by the datapath).
    pub dropped_packets: Option<u64>,
    /// Segments the sender sent, estimated from its bytes (for retransmit shares).
    pub segments: u64,
    /// What the transfer's steady state added to the latency probe's round trips
    /// (`None`: not probed; an error: no figure, and why).
    pub latency: Option<Result<Extra, String>>,
}
