//! The C bucket (`bpf/include/bucket.h`, compiled for the host by build.rs) against the
//! Rust model in the core, step by step on random traffic: the model the core's tests
//! prove exact is the arithmetic the kernel runs.

#[cfg(test)]
mod tests {
    use crate::layout::BucketState;
    use chadthrottle_core::bucket::{Bucket, UNLIMITED};

    unsafe extern "C" {
        fn ct_host_bucket_admit(
            bucket: *mut BucketState,
            now_ns: u64,
            len: u64,
            slack_ns: u64,
        ) -> i32;
    }

    fn c_admit(bucket: &mut BucketState, now_ns: u64, len: u64, slack_ns: u64) -> bool {
        // SAFETY: BucketState is #[repr(C)] `struct ct_bucket`, live and exclusive here.
        unsafe { ct_host_bucket_admit(bucket, now_ns, len, slack_ns) != 0 }
    }

    /// xorshift64*: reproducible randomness without a dependency.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
    }

    #[test]
    fn the_c_bucket_is_the_rust_model() {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        let rates = [
            0,
            1,
            7,
            100_000,
            1 << 20,
            12_500_000_000,
            1 << 40,
            UNLIMITED,
        ];
        for round in 0..2_000 {
            let rate = if round % 3 == 0 {
                rates[(round / 3) % rates.len()]
            } else {
                1 + random.below(1 << 40)
            };
            let burst = 1 + random.below(16 << 30);
            let start = random.below(1 << 50);
            let mut model = Bucket::new(rate, burst, start);
            let mut kernel: BucketState = model;
            let mut now = start;
            for _packet in 0..500 {
                // mostly back-to-back, sometimes a stall, sometimes a silence past IDLE_NS
                let gap_bound = match random.below(20) {
                    0 => 3_000_000_000,
                    1..=3 => 300_000_000,
                    _ => 100_000,
                };
                now += random.below(gap_bound);
                let len_bound = if random.below(50) == 0 {
                    u64::from(u32::MAX)
                } else {
                    65_536
                };
                let len = 1 + random.below(len_bound);
                // plain packets, and shaped TCP ones with a second burst of slack
                let slack = match random.below(4) {
                    0 => model.tau_ns,
                    1 => random.below(1_000_000_000),
                    _ => 0,
                };
                let expected = model.admit_with_slack(now, len, slack);
                let got = c_admit(&mut kernel, now, len, slack);
                assert_eq!(
                    (got, kernel),
                    (expected, model),
                    "rate {rate} burst {burst} now {now} len {len} slack {slack}"
                );
            }
        }
    }
}
