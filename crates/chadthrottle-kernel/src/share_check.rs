//! The C division of a budget among sockets (`bpf/include/share.h`, compiled for the host
//! by build.rs), driven the way `ct_shape_tick` drives it, with simulated sockets that move
//! what their cap and their own demand allow: the aggregate holds, greedy sockets get
//! equal shares, light ones keep what they use, and an idle socket's share goes to the
//! busy ones. A simulated download, whose rate is what its receive window lets through per
//! round trip, checks that the window's correction brings the average onto the cap.

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
        fn ct_host_share_down_rtt(rcv_rtt_us: u32, srtt_us: u32) -> u32;
        fn ct_host_share_burst_segs(cap: u64, srtt_us: u32, mss: u32) -> u32;
        fn ct_host_share_min_rtt(min_rtt_us: u32, rcv_rtt_us: u32, srtt_us: u32) -> u32;
        fn ct_host_share_queue_window(cap: u64, min_rtt_us: u32, mss: u32) -> u32;
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

    #[test]
    fn an_upload_on_a_lan_sends_bursts_of_four_ms_of_its_cap() {
        // SAFETY: a pure function of its arguments.
        let segs = |cap, srtt_us, mss| unsafe { ct_host_share_burst_segs(cap, srtt_us, mss) };
        assert_eq!(segs(MB / 8, 40, 1448), 4, "at least four segments");
        assert_eq!(segs(10 * MB, 40, 1448), 27, "4 ms of 10 MB/s");
        // at the largest round trip clamped, the clamp still lets the cap through
        let clamp = segs(10 * MB, 999, 1448);
        assert!(u64::from(clamp) * 1448 * 1_000_000 / 999 >= 10 * MB);
        assert_eq!(segs(50 * MB, 40, 1448), 0, "a clamp allowing 64 KB is none");
        assert_eq!(segs(MB, 1000, 1448), 0, "a millisecond: not a LAN");
        assert_eq!(segs(MB, 0, 1448), 0, "no round trip yet");
        assert_eq!(segs(MB, 40, 0), 0, "no segment size yet");
    }

    #[test]
    fn a_download_is_sized_for_the_receivers_round_trip() {
        // SAFETY: a pure function of its arguments.
        let rtt = |rcv_rtt_us, srtt_us| unsafe { ct_host_share_down_rtt(rcv_rtt_us, srtt_us) };
        assert_eq!(rtt(0, 40_000), 40_000, "no receiver estimate yet");
        assert_eq!(rtt(20_000, 40_000), 20_000, "the handshake's stale sample");
        assert_eq!(
            rtt(30_000, 20_000),
            30_000,
            "the receiver's, above the smoothed"
        );
        assert_eq!(rtt(20_000, 500), 500, "LAN by the handshake: the policer's");
        assert_eq!(rtt(600, 40_000), 600, "LAN by the receiver: the policer's");
    }

    #[test]
    fn an_ifb_download_window_is_its_share_over_the_least_round_trip_and_the_target() {
        // SAFETY: pure functions of their arguments.
        let window =
            |cap, min_rtt_us, mss| unsafe { ct_host_share_queue_window(cap, min_rtt_us, mss) };
        // SAFETY: as above.
        let least = |min, rcv, srtt| unsafe { ct_host_share_min_rtt(min, rcv, srtt) };
        // 1 MB/s x (20 ms + 150 ms) + four segments
        assert_eq!(window(MB, 20_000, 1448), 170_000 + 4 * 1448);
        assert_eq!(window(MB / 8, 40, 1448), 18_755 + 4 * 1448, "LAN: never 0");
        assert_eq!(window(u64::MAX / 1_000_000, 1_000_000, 1448), 0x7fff_ffff);
        assert_eq!(
            least(0, 0, 20_000),
            20_000,
            "the handshake's before any other"
        );
        assert_eq!(
            least(20_000, 25_000, 40_000),
            20_000,
            "a longer one is not the least"
        );
        assert_eq!(least(20_000, 18_000, 40_000), 18_000);
        assert_eq!(least(20_000, 0, 0), 20_000, "no estimate keeps the least");
    }

    /// Eight (or one) downloads through an HTB class of `rate` on a path of `base_us`:
    /// each keeps its window in flight, so what the class queues is the sum of the windows
    /// less what the path holds, and the receiver's round trip is the path's plus the
    /// queue's delay, smoothed by 1/8 per round trip as the kernel's estimate is. Returns
    /// the queue's delay (µs) after `rounds` round trips, with the windows sized as
    /// `window_of(min_rtt, smoothed_rtt)` says.
    fn ifb_queue_delay_us(
        rate: u64,
        sockets: u64,
        base_us: u64,
        rounds: usize,
        window_of: impl Fn(u64, u32, u32) -> u32,
    ) -> u64 {
        let (mut queue, mut smoothed, mut least) = (0_u64, u32::try_from(base_us).unwrap_or(0), 0);
        for _ in 0..rounds {
            let rtt_now = base_us + queue * 1_000_000 / rate;
            let sample = u32::try_from(rtt_now).unwrap_or(u32::MAX);
            smoothed = smoothed - smoothed / 8 + sample / 8;
            // SAFETY: a pure function of its arguments.
            least = unsafe { ct_host_share_min_rtt(least, smoothed, smoothed) };
            let windows = sockets * u64::from(window_of(rate / sockets, least, smoothed));
            queue = windows.saturating_sub(rate * base_us / 1_000_000);
        }
        queue * 1_000_000 / rate
    }

    #[test]
    fn an_ifb_queue_stays_near_the_target_on_the_least_round_trip_and_grows_on_the_smoothed() {
        // SAFETY: a pure function of its arguments.
        let sized = |cap, rtt, _smoothed| unsafe { ct_host_share_queue_window(cap, rtt, 1448) };
        // SAFETY: as above.
        let on_smoothed =
            |cap, _least, smoothed| unsafe { ct_host_share_queue_window(cap, smoothed, 1448) };
        for (rate, sockets, base_us) in [
            // the lab's veth: 50 µs
            (100 * 1024, 8, 50),
            (100 * 1024, 8, 20_000),
            (2 * MB, 1, 50),
            (2 * MB, 1, 20_000),
            (10 * MB, 8, 20_000),
        ] {
            let delay = ifb_queue_delay_us(rate, sockets, base_us, 2000, sized);
            // the target and each socket's four segments
            let bound = 150_000 + sockets * 4 * 1448 * 1_000_000 / rate + 1000;
            assert!(
                delay <= bound,
                "{rate} B/s x {sockets}, {base_us} µs: {delay} µs"
            );
            assert!(
                delay >= 149_000,
                "the windows leave the class a queue: {delay} µs"
            );
            let growing = ifb_queue_delay_us(rate, sockets, base_us, 2000, on_smoothed);
            assert!(
                growing > 10 * bound,
                "on the smoothed round trip: {growing} µs"
            );
        }
    }

    /// A download held by its receive window alone: each millisecond it moves the window
    /// in force per `path_rtt_us` (whole segments only if `whole_segments`), give or take
    /// 2 % (the sender's and the receiver's timing), and a new window is in force one
    /// round trip after it is set. The shaper looks every CHECK_NS and, once per epoch,
    /// sets the next window from the rate measured since its last report, as
    /// `ct_shape_tick` and `ct_apply_cap` do, with the socket's smoothed RTT `srtt_us` and
    /// the receiver's estimate `rcv_rtt_us` (0 until the first window arrived). Returns
    /// the average rate from 2 s to `seconds` and the distinct windows set in that time.
    fn shaped_download(
        cap: u64,
        path_rtt_us: u32,
        (rcv_rtt_us, srtt_us): (u32, u32),
        whole_segments: bool,
        seconds: u64,
    ) -> (u64, std::collections::BTreeSet<u32>) {
        const MSS: u32 = 1448;
        let mut share = Share::default();
        let mut epoch = 0;
        let mut now = 1_000 * MS;
        // SAFETY: Share is #[repr(C)] `struct ct_share`; the pointers are live.
        let mut sock_cap = unsafe { ct_host_share_join(&mut share, cap, now, &mut epoch) };
        // SAFETY: pure functions of their arguments.
        let next_window = |window, sock_cap, measured, rcv_rtt_us| unsafe {
            let rtt_us = ct_host_share_down_rtt(rcv_rtt_us, srtt_us);
            ct_host_share_next_window(window, sock_cap, measured, rtt_us, MSS)
        };
        // at join the receiver has no estimate of its own yet
        let mut window = next_window(0, sock_cap, 0, 0);
        // windows set, with the time each comes into force
        let mut pending = std::collections::VecDeque::from([(now, window)]);
        let mut in_force = window;
        let (mut moved, mut mark_bytes, mut mark_ns, mut last_check) = (0u64, 0u64, now, now);
        let (mut steady_bytes, mut windows) = (0u64, std::collections::BTreeSet::new());
        let mut noise = 0x2545_f491_4f6c_dd1d_u64;
        let start = now;
        while now < start + seconds * 1_000 * MS {
            now += MS;
            while pending.front().is_some_and(|&(at, _)| at <= now) {
                in_force = pending.pop_front().map_or(in_force, |(_, window)| window);
            }
            let per_trip = if whole_segments {
                u64::from(in_force / MSS * MSS)
            } else {
                u64::from(in_force)
            };
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let wobble = 980 + noise % 41; // 0.98 .. 1.02, in thousandths
            let bytes = per_trip * 1_000 / u64::from(path_rtt_us) * wobble / 1_000;
            moved += bytes;
            if now >= start + 2_000 * MS {
                steady_bytes += bytes;
            }
            if now - last_check < CHECK_NS {
                continue;
            }
            last_check = now;
            let rate = (moved - mark_bytes) * 1_000_000 / ((now - mark_ns) / 1_000);
            let before = epoch;
            // SAFETY: as above.
            let next_cap =
                unsafe { ct_host_share_report(&mut share, cap, now, &mut epoch, rate, sock_cap) };
            if epoch == before {
                continue;
            }
            sock_cap = next_cap;
            mark_bytes = moved;
            mark_ns = now;
            window = next_window(window, sock_cap, rate, rcv_rtt_us);
            pending.push_back((now + u64::from(path_rtt_us) * 1_000, window));
            if now >= start + 2_000 * MS {
                windows.insert(window);
            }
        }
        (steady_bytes / (seconds - 2), windows)
    }

    #[test]
    fn a_download_whose_handshake_took_twice_the_round_trip_lands_on_the_cap() {
        // The lab's 20 ms download: the receiver's only smoothed RTT sample is the
        // handshake's, 42.66 ms (a run at +6.2 %). Sized from it, the window could not go
        // below half of cap x 42.66 ms, which lets 1 MiB/s x 1.066 through, and stayed
        // there; sized from the receiver's own round trip it dithers onto the cap.
        for whole_segments in [false, true] {
            let (rate, windows) =
                shaped_download(1 << 20, 20_000, (20_000, 42_660), whole_segments, 12);
            assert!(
                within(rate, 1 << 20, 0.01),
                "whole segments {whole_segments}: {rate} B/s against {}, windows {windows:?}",
                1 << 20
            );
            assert!(
                windows.len() > 3,
                "whole segments {whole_segments}: the window is corrected: {windows:?}"
            );
        }
    }

    #[test]
    fn a_download_corrects_its_window_for_a_slower_round_trip_too() {
        // the other way round: the receiver's estimate follows the fastest round trips, and
        // a busy machine adds to most of them; the window grows above cap x RTT until the
        // rate is the cap
        let (rate, windows) = shaped_download(10 << 20, 26_000, (20_000, 20_000), true, 12);
        assert!(
            within(rate, 10 << 20, 0.01),
            "{rate} B/s against {}, windows {windows:?}",
            10 << 20
        );
    }
}
