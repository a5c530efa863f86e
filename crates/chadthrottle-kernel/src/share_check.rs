//! The C division of a budget among sockets (`bpf/include/share.h`, compiled for the host
//! by build.rs), driven the way `ct_shape_tick` drives it, with simulated sockets that move
//! what their cap and their own demand allow: the aggregate holds, greedy sockets get
//! equal shares, light ones keep what they use, and an idle socket's share goes to the
//! busy ones.

#[cfg(test)]
mod tests {
    use crate::layout::Share;

    unsafe extern "C" {
        fn ct_host_share_join(share: *mut Share, budget: u64, now_ns: u64, epoch: *mut u32) -> u64;
        fn ct_host_share_report(
            share: *mut Share,
            budget: u64,
            now_ns: u64,
            epoch: *mut u32,
            sock_rate: u64,
            sock_cap: u64,
        ) -> u64;
        fn ct_host_share_window(rate: u64, rtt_us: u32, mss: u32) -> u32;
        fn ct_host_share_next_window(
            window: u32,
            cap: u64,
            measured: u64,
            rtt_us: u32,
            mss: u32,
        ) -> u32;
    }

    const MS: u64 = 1_000_000;
    /// How often a socket looks (CT_SHAPE_CHECK_NS).
    const CHECK_NS: u64 = 25 * MS;

    struct Socket {
        /// What the application would move if nothing held it (bytes per second).
        demand: u64,
        /// How often the socket gets a callback to report in (a slow socket's ACKs are
        /// sparse); `CHECK_NS` for a busy one.
        every_ns: u64,
        last_callback: u64,
        cap: u64,
        epoch: u32,
        moved: u64,
        mark_bytes: u64,
        mark_ns: u64,
    }

    struct Process {
        budget: u64,
        share: Share,
        sockets: Vec<Socket>,
        now: u64,
    }

    impl Process {
        fn new(budget: u64) -> Process {
            Process {
                budget,
                share: Share::default(),
                sockets: Vec::new(),
                now: 1_000 * MS,
            }
        }

        fn join(&mut self, demand: u64) {
            let mut epoch = 0;
            // SAFETY: Share is #[repr(C)] `struct ct_share`; both pointers are live.
            let cap =
                unsafe { ct_host_share_join(&mut self.share, self.budget, self.now, &mut epoch) };
            self.sockets.push(Socket {
                demand,
                every_ns: CHECK_NS,
                last_callback: self.now,
                cap,
                epoch,
                moved: 0,
                mark_bytes: 0,
                mark_ns: self.now,
            });
        }

        /// Runs `ns` of time in CHECK_NS steps; returns the bytes each socket moved.
        fn run(&mut self, ns: u64) -> Vec<u64> {
            let before: Vec<u64> = self.sockets.iter().map(|s| s.moved).collect();
            for _ in 0..ns / CHECK_NS {
                self.now += CHECK_NS;
                for socket in &mut self.sockets {
                    socket.moved += socket.cap.min(socket.demand) * CHECK_NS / 1_000_000_000;
                    if self.now - socket.last_callback < socket.every_ns {
                        continue;
                    }
                    socket.last_callback = self.now;
                    let rate = (socket.moved - socket.mark_bytes) * 1_000_000
                        / ((self.now - socket.mark_ns) / 1_000);
                    let epoch_before = socket.epoch;
                    // SAFETY: as in join.
                    let cap = unsafe {
                        ct_host_share_report(
                            &mut self.share,
                            self.budget,
                            self.now,
                            &mut socket.epoch,
                            rate,
                            socket.cap,
                        )
                    };
                    // the datapath acts only on a socket's one report per epoch
                    if socket.epoch != epoch_before {
                        socket.cap = cap;
                        socket.mark_bytes = socket.moved;
                        socket.mark_ns = self.now;
                    }
                }
            }
            self.sockets
                .iter()
                .zip(before)
                .map(|(socket, before)| socket.moved - before)
                .collect()
        }
    }

    const MB: u64 = 1_000_000;
    const GREEDY: u64 = u64::MAX / 4_000_000_000;

    fn within(value: u64, expected: u64, tolerance: f64) -> bool {
        (value as f64 - expected as f64).abs() <= expected as f64 * tolerance
    }

    #[test]
    fn one_greedy_socket_gets_the_whole_budget() {
        let mut process = Process::new(10 * MB);
        process.join(GREEDY);
        process.run(1_000 * MS);
        let moved = process.run(5_000 * MS);
        assert!(within(moved[0], 50 * MB, 0.001), "{moved:?}");
    }

    #[test]
    fn eight_greedy_sockets_hold_the_aggregate_and_share_it_equally() {
        let mut process = Process::new(10 * MB);
        for _ in 0..8 {
            process.join(GREEDY);
        }
        process.run(1_000 * MS);
        let moved = process.run(5_000 * MS);
        let total: u64 = moved.iter().sum();
        assert!(within(total, 50 * MB, 0.01), "aggregate {total}: {moved:?}");
        for socket in &moved {
            assert!(within(*socket, 50 * MB / 8, 0.05), "unequal: {moved:?}");
        }
    }

    #[test]
    fn light_sockets_keep_what_they_use_and_greedy_ones_split_the_rest() {
        let mut process = Process::new(10 * MB);
        for demand in [MB, 2 * MB, GREEDY, GREEDY] {
            process.join(demand);
        }
        process.run(2_000 * MS);
        let moved = process.run(10_000 * MS);
        assert!(within(moved[0], 10 * MB, 0.01), "light 1 MB/s: {moved:?}");
        assert!(within(moved[1], 20 * MB, 0.01), "light 2 MB/s: {moved:?}");
        for greedy in &moved[2..] {
            assert!(within(*greedy, 35 * MB, 0.05), "greedy: {moved:?}");
        }
        let total: u64 = moved.iter().sum();
        assert!(within(total, 100 * MB, 0.02), "aggregate {total}");
    }

    #[test]
    fn an_idle_sockets_share_goes_to_the_busy_one() {
        let mut process = Process::new(10 * MB);
        process.join(GREEDY);
        process.join(GREEDY);
        process.run(2_000 * MS);
        process.sockets[1].demand = 0;
        process.run(500 * MS);
        let moved = process.run(2_000 * MS);
        assert!(within(moved[0], 20 * MB, 0.01), "{moved:?}");
        assert_eq!(moved[1], 0);
    }

    #[test]
    fn a_socket_that_joins_late_gets_its_share_within_a_few_epochs() {
        let mut process = Process::new(8 * MB);
        process.join(GREEDY);
        process.run(2_000 * MS);
        process.join(GREEDY);
        process.run(500 * MS);
        let moved = process.run(2_000 * MS);
        assert!(within(moved[0], 8 * MB, 0.05), "{moved:?}");
        assert!(within(moved[1], 8 * MB, 0.05), "{moved:?}");
    }

    #[test]
    fn a_download_window_corrects_toward_the_cap_within_bounds() {
        // SAFETY: a pure function of its arguments.
        let next = |window, cap, measured| unsafe {
            ct_host_share_next_window(window, cap, measured, 20_000, 1448)
        };
        assert_eq!(next(0, MB, 0), 20_000, "starts at cap x RTT");
        assert_eq!(
            next(20_000, MB, 940_000) as u64,
            20_000 + (21_276 - 20_000) / 2
        );
        assert_eq!(next(20_000, MB, 1_060_000), 20_000 - (20_000 - 18_867) / 2);
        assert_eq!(
            next(20_000, MB, 400_000),
            20_000,
            "held back elsewhere: kept"
        );
        assert_eq!(next(39_000, MB, 500_001), 40_000, "at most twice cap x RTT");
        assert_eq!(next(11_000, MB, 4 * MB), 10_000, "at least half");
        assert_eq!(next(20_000, 1_000, 1_000), 0, "not expressible");
    }

    #[test]
    fn sockets_held_back_by_drops_cannot_keep_their_caps_inflated() {
        // eight sockets that each move only 70 % of their cap (the policer behind the
        // shaper drops the rest) all look light; their caps must still add up to the
        // budget, not stay at whatever they started with
        let mut process = Process::new(8 * MB);
        for _ in 0..8 {
            process.join(GREEDY);
        }
        for _ in 0..20 {
            process.run(CHECK_NS);
            for socket in &mut process.sockets {
                socket.demand = socket.cap * 7 / 10;
            }
        }
        let caps: u64 = process.sockets.iter().map(|socket| socket.cap).sum();
        assert!(within(caps, 8 * MB, 0.01), "caps add up to {caps}");
    }

    #[test]
    fn sockets_that_report_only_every_few_epochs_still_hold_the_aggregate() {
        // eight slow sockets (12.8 KB/s each) get an ACK, and so a chance to report, only
        // every 200 to 300 ms: a division that counts only this epoch's reporters hands
        // each far more than an eighth
        let mut process = Process::new(102_400);
        for index in 0..8 {
            process.join(GREEDY);
            process.sockets[index].every_ns = (200 + 25 * (index as u64 % 3)) * MS;
        }
        process.run(3_000 * MS);
        let moved: u64 = process.run(4_000 * MS).iter().sum();
        assert!(
            within(moved, 4 * 102_400, 0.02),
            "moved {moved} in 4 s against {}",
            4 * 102_400
        );
    }

    #[test]
    fn no_cap_falls_below_a_64th_of_the_budget() {
        let mut process = Process::new(64 * MB);
        for _ in 0..40 {
            process.join(GREEDY);
        }
        process.sockets[0].demand = 0;
        process.run(1_000 * MS);
        assert!(process.sockets.iter().all(|socket| socket.cap >= MB));
    }

    #[test]
    fn many_sockets_share_the_budget_rather_than_add_up_their_floors() {
        // 1000 greedy sockets: each gets a thousandth, not a 64th
        let mut process = Process::new(100 * MB);
        for _ in 0..1000 {
            process.join(GREEDY);
        }
        process.run(1_000 * MS);
        let moved: u64 = process.run(2_000 * MS).iter().sum();
        assert!(within(moved, 200 * MB, 0.02), "moved {moved}");
    }

    #[test]
    fn a_window_is_rate_times_round_trip_from_one_segment_up() {
        // SAFETY: a pure function of its arguments.
        let window = |rate, rtt_us, mss| unsafe { ct_host_share_window(rate, rtt_us, mss) };
        assert_eq!(window(MB, 20_000, 1448), 20_000);
        assert_eq!(window(10 * MB, 20_000, 1448), 200_000);
        assert_eq!(
            window(MB, 40, 1448),
            0,
            "LAN: a window cannot express 1 MB/s"
        );
        assert_eq!(
            window(72_399, 20_000, 1448),
            0,
            "1447 B is under one segment"
        );
        assert_eq!(window(72_400, 20_000, 1448), 1448);
        assert_eq!(window(u64::MAX / 1_000_000, 1_000_000, 1448), 0x7fff_ffff);
    }
}
