//! When a limit took effect, from the receiver's byte count polled every few milliseconds:
//! the rate over each interval between two polls, and the first interval after the limit
//! call began from which the rate stays within a ceiling (a multiple of the limit) for a
//! few intervals in a row. Pure, so the rule is tested on made-up polls.

/// The receiver's bytes so far at one moment (CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    pub at_ns: u64,
    pub bytes: u64,
}

/// How long after `start_ns` the rate came to stay under `ceiling` bytes per second: the
/// end of the first interval (beginning at or after `start_ns`) that, with the `hold - 1`
/// intervals after it, is at or under the ceiling. One interval alone is not enough: a
/// flow the limit has not reached yet can stall for one. `None`: it never did within the
/// polls.
pub fn time_to_effect(polls: &[Poll], start_ns: u64, ceiling: f64, hold: usize) -> Option<u64> {
    let under: Vec<(u64, bool)> = polls
        .windows(2)
        .filter(|pair| pair[0].at_ns >= start_ns && pair[1].at_ns > pair[0].at_ns)
        .map(|pair| {
            let seconds = (pair[1].at_ns - pair[0].at_ns) as f64 / 1e9;
            let rate = pair[1].bytes.saturating_sub(pair[0].bytes) as f64 / seconds;
            (pair[1].at_ns, rate <= ceiling)
        })
        .collect();
    let hold = hold.max(1);
    under
        .windows(hold)
        .find(|run| run.iter().all(|&(_, under)| under))
        .map(|run| run[0].0 - start_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Polls every 10 ms from 0, receiving `per_interval[i]` bytes in interval i.
    fn polls(per_interval: &[u64]) -> Vec<Poll> {
        let mut bytes = 0;
        let mut polls = vec![Poll { at_ns: 0, bytes: 0 }];
        for (index, &received) in per_interval.iter().enumerate() {
            bytes += received;
            polls.push(Poll {
                at_ns: (index as u64 + 1) * 10 * MS,
                bytes,
            });
        }
        polls
    }

    #[test]
    fn the_first_run_of_intervals_under_the_ceiling_counts_to_its_first_end() {
        // 10 ms intervals: 1 MB each is 100 MB/s; the ceiling is 12 MB/s (120 kB per 10 ms)
        let polls = polls(&[
            1_000_000, 1_000_000, 1_000_000, 100_000, 100_000, 100_000, 90_000,
        ]);
        assert_eq!(time_to_effect(&polls, 0, 12e6, 3), Some(40 * MS));
        // counted from the call's start, not from the first poll
        assert_eq!(time_to_effect(&polls, 5 * MS, 12e6, 3), Some(35 * MS));
    }

    #[test]
    fn one_stalled_interval_is_not_the_limit() {
        let polls = polls(&[
            1_000_000, 0, 1_000_000, 1_000_000, 100_000, 100_000, 100_000,
        ]);
        assert_eq!(time_to_effect(&polls, 0, 12e6, 3), Some(50 * MS));
        assert_eq!(time_to_effect(&polls, 0, 12e6, 1), Some(20 * MS));
    }

    #[test]
    fn a_flow_that_never_falls_has_no_time() {
        let polls = polls(&[1_000_000; 8]);
        assert_eq!(time_to_effect(&polls, 0, 12e6, 3), None);
        // too few intervals under the ceiling at the end
        let polls = super::tests::polls(&[1_000_000, 1_000_000, 100_000, 100_000]);
        assert_eq!(time_to_effect(&polls, 0, 12e6, 3), None);
    }

    #[test]
    fn intervals_before_the_call_are_not_looked_at() {
        let polls = polls(&[
            100_000, 100_000, 100_000, 1_000_000, 100_000, 100_000, 100_000,
        ]);
        assert_eq!(time_to_effect(&polls, 30 * MS, 12e6, 3), Some(20 * MS));
    }
}
