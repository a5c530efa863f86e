//! Rates from growing byte counters: a sliding window for a steady display, and the
//! last minute of rates for graphs, with its peak and average.

use crate::direction::PerDirection;
use std::collections::VecDeque;

/// The window rates are averaged over. Long enough that a flow policed on/off in
/// 200 ms steps shows its average, not a jump between 0 and its peak.
pub const RATE_WINDOW_NS: u64 = 2_000_000_000;
/// How much history is kept for graphs.
pub const HISTORY_NS: u64 = 60_000_000_000;

/// A counter's samples over the last [`RATE_WINDOW_NS`]; the rate is the growth between
/// the oldest and the newest.
#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    /// (time in ns, counter), oldest first; keeps one sample at or before the window start.
    samples: VecDeque<(u64, u64)>,
}

impl RateMeter {
    /// Records the counter's value at `now_ns` (times must not go backwards).
    pub fn record(&mut self, now_ns: u64, total: u64) {
        if let Some(&(last_ns, _)) = self.samples.back()
            && now_ns <= last_ns
        {
            self.samples.pop_back();
        }
        self.samples.push_back((now_ns, total));
        let start = now_ns.saturating_sub(RATE_WINDOW_NS);
        while self.samples.len() > 2 && self.samples[1].0 <= start {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window; 0 before there are two samples. A counter that
    /// went backwards (a reset) counts as no traffic.
    pub fn rate(&self) -> u64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, v0)), Some(&(t1, v1))) if t1 > t0 => {
                let bytes = u128::from(v1.saturating_sub(v0));
                let rate = bytes * 1_000_000_000 / u128::from(t1 - t0);
                u64::try_from(rate).unwrap_or(u64::MAX)
            }
            _ => 0,
        }
    }
}

/// One point of a process's history: rates at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HistoryPoint {
    /// Monotonic time of the sample, ns.
    pub at_ns: u64,
    pub rx_rate: u64,
    pub tx_rate: u64,
}

/// The last [`HISTORY_NS`] of a process's rates, oldest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    points: VecDeque<HistoryPoint>,
}

impl History {
    pub fn push(&mut self, point: HistoryPoint) {
        self.points.push_back(point);
        let start = point.at_ns.saturating_sub(HISTORY_NS);
        while self.points.front().is_some_and(|p| p.at_ns < start) {
            self.points.pop_front();
        }
    }

    pub fn points(&self) -> impl ExactSizeIterator<Item = &HistoryPoint> {
        self.points.iter()
    }
}

/// The highest rate of each direction in `points`, 0 without points. Each direction has
/// its own peak: a download burst and an upload burst seldom come at the same moment.
pub fn peak(points: &[HistoryPoint]) -> PerDirection<u64> {
    PerDirection {
        up: points.iter().map(|p| p.tx_rate).max().unwrap_or(0),
        down: points.iter().map(|p| p.rx_rate).max().unwrap_or(0),
    }
}

/// The mean rate of each direction in `points`, 0 without points. A point is taken at
/// every reading, so with a steady interval the mean of the points is the average over
/// the time they span. Summed in 128 bits: a minute of rates near `u64::MAX` must not wrap.
pub fn average(points: &[HistoryPoint]) -> PerDirection<u64> {
    let mean = |rate: fn(&HistoryPoint) -> u64| {
        let count = points.len().max(1) as u128;
        let sum: u128 = points.iter().map(|p| u128::from(rate(p))).sum();
        u64::try_from(sum / count).unwrap_or(u64::MAX)
    };
    PerDirection {
        up: mean(|p| p.tx_rate),
        down: mean(|p| p.rx_rate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_steady_counter_gives_its_rate_exactly() {
        let mut meter = RateMeter::default();
        assert_eq!(meter.rate(), 0);
        for second in 0..10 {
            meter.record(second * SECOND, second * 1_000_000);
        }
        assert_eq!(meter.rate(), 1_000_000);
    }

    #[test]
    fn on_off_traffic_reads_as_its_average() {
        // 200 ms on at 2 MB/s, 200 ms off: 1 MB/s on average, sampled every 100 ms
        let mut meter = RateMeter::default();
        let mut total = 0;
        let mut rates = Vec::new();
        for tick in 0..100u64 {
            if (tick / 2) % 2 == 0 {
                total += 200_000;
            }
            meter.record(tick * SECOND / 10, total);
            if tick >= 20 {
                rates.push(meter.rate());
            }
        }
        let (min, max) = (rates.iter().min().unwrap(), rates.iter().max().unwrap());
        assert!(*min >= 900_000 && *max <= 1_100_000, "{min}..{max}");
    }

    #[test]
    fn the_window_forgets_old_traffic() {
        let mut meter = RateMeter::default();
        meter.record(0, 0);
        meter.record(SECOND, 10_000_000);
        for second in 2..6 {
            meter.record(second * SECOND, 10_000_000);
        }
        assert_eq!(meter.rate(), 0);
    }

    #[test]
    fn a_counter_reset_is_no_traffic_and_time_may_repeat() {
        let mut meter = RateMeter::default();
        meter.record(0, 5_000);
        meter.record(SECOND, 1_000);
        assert_eq!(meter.rate(), 0);
        meter.record(SECOND, 3_000);
        meter.record(2 * SECOND, 3_000);
        assert_eq!(meter.rate(), 0);
    }

    #[test]
    fn history_keeps_one_minute() {
        let mut history = History::default();
        for second in 0..100 {
            history.push(HistoryPoint {
                at_ns: second * SECOND,
                rx_rate: second,
                tx_rate: 0,
            });
        }
        assert_eq!(history.points().len(), 61);
        assert_eq!(history.points().next().unwrap().rx_rate, 39);
    }

    #[test]
    fn peak_and_average_take_each_direction_on_its_own() {
        let point = |second: u64, rx_rate, tx_rate| HistoryPoint {
            at_ns: second * SECOND,
            rx_rate,
            tx_rate,
        };
        let points = [point(0, 300, 40), point(1, 0, 90), point(2, 600, 20)];
        assert_eq!(peak(&points), PerDirection { up: 90, down: 600 });
        assert_eq!(average(&points), PerDirection { up: 50, down: 300 });
        // integer division rounds down: (1 + 2) / 2
        assert_eq!(average(&[point(0, 1, 0), point(1, 2, 0)]).down, 1);
    }

    #[test]
    fn no_history_is_zero_and_huge_rates_do_not_wrap() {
        assert_eq!(peak(&[]), PerDirection { up: 0, down: 0 });
        assert_eq!(average(&[]), PerDirection { up: 0, down: 0 });
        let huge = HistoryPoint {
            at_ns: 0,
            rx_rate: u64::MAX,
            tx_rate: u64::MAX - 1,
        };
        let average = average(&[huge; 60]);
        assert_eq!((average.down, average.up), (u64::MAX, u64::MAX - 1));
    }
}
