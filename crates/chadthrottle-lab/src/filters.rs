//! The benchmark's filters as typed on the command line: comma-separated lists
//! (`--rtt 0,20 --cc bbr --limits 1M,10M --dirs up --connections 1,8 --backends policer`),
//! every word checked, the bad one named in the error.

use crate::compare::Backend;
use anyhow::Context as _;
use chadthrottle_core::{Direction, Rate};

/// Every comma-separated word of `text`, the value of `option`, through `parse`;
/// `accepted` says what is accepted.
fn list<T>(
    option: &str,
    text: &str,
    accepted: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> anyhow::Result<Vec<T>> {
    text.split(',')
        .map(str::trim)
        .map(|word| parse(word).with_context(|| format!("{option}: {word:?} is not {accepted}")))
        .collect()
}

/// The one of `names` that `word` is.
fn named<T: Copy>(word: &str, all: &[T], name: impl Fn(T) -> &'static str) -> Option<T> {
    all.iter().copied().find(|&item| name(item) == word)
}

/// `--rtt`: round-trip times in ms (0: the plain veth pair).
pub fn rtts(text: &str) -> anyhow::Result<Vec<u64>> {
    list("--rtt", text, "a round-trip time in ms (0, 20)", |word| {
        word.parse().ok()
    })
}

/// `--cc`: congestion controls.
pub fn ccs(text: &str) -> anyhow::Result<Vec<&'static str>> {
    list("--cc", text, "one of cubic, bbr", |word| {
        named(word, &["cubic", "bbr"], |cc| cc)
    })
}

/// `--dirs`: directions.
pub fn directions(text: &str) -> anyhow::Result<Vec<Direction>> {
    list("--dirs", text, "one of up, down", |word| {
        named(word, &Direction::ALL, Direction::as_str)
    })
}

/// `--connections`: connections per client, 1 to 64.
pub fn connections(text: &str) -> anyhow::Result<Vec<usize>> {
    list("--connections", text, "a number from 1 to 64", |word| {
        word.parse().ok().filter(|n| (1..=64).contains(n))
    })
}

/// `--limits`: rates as `chadthrottle limit` takes them (`100K`, `1M`: 1024-based).
pub fn rates(text: &str) -> anyhow::Result<Vec<u64>> {
    list(
        "--limits",
        text,
        "a rate above 0 like 100K, 1M, 200M (bytes/s, 1024-based)",
        |word| {
            word.parse::<Rate>()
                .ok()
                .filter(|rate| !rate.is_block())
                .map(Rate::bytes_per_sec)
        },
    )
}

/// `--backends`: what limits the flow.
pub fn backends(text: &str) -> anyhow::Result<Vec<Backend>> {
    list(
        "--backends",
        text,
        "one of default, policer, shaping, htb, ifb, nftables, tc_police, tc-htb, trickle",
        |word| named(word, &Backend::CHOOSABLE, Backend::word),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_word_by_word() -> anyhow::Result<()> {
        assert_eq!(rtts("0,20")?, [0, 20]);
        assert_eq!(ccs("bbr")?, ["bbr"]);
        assert_eq!(directions("up,down")?, Direction::ALL);
        assert_eq!(connections("1, 8")?, [1, 8]);
        assert_eq!(rates("100K,1M,200M")?, [100 * 1024, 1 << 20, 200 << 20]);
        assert_eq!(
            backends("policer,shaping,htb,ifb,nftables,tc_police,tc-htb,trickle")?,
            Backend::ALL.to_vec()
        );
        assert_eq!(
            backends("default,tc-htb")?,
            [Backend::Default, Backend::HtbScript]
        );
        assert_eq!(
            backends("policer,nftables,tc_police")?,
            [Backend::Policer, Backend::Nftables, Backend::TcPolice]
        );
        Ok(())
    }

    #[test]
    fn a_bad_word_is_named_with_what_is_accepted() {
        let message = |result: anyhow::Result<Vec<Direction>>| match result {
            Ok(list) => panic!("accepted {list:?}"),
            Err(error) => error.to_string(),
        };
        assert_eq!(
            message(directions("up,sideways")),
            "--dirs: \"sideways\" is not one of up, down"
        );
        assert!(connections("0").is_err());
        assert!(rates("0").is_err());
        assert!(rates("fast").is_err());
        assert!(backends("wondershaper").is_err());
        // the backend's own name, as `--download-backend` takes it
        assert!(backends("tc-police").is_err());
        assert!(ccs("reno").is_err());
    }
}
