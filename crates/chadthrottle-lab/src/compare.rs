//! The comparison of issue 5 (`ct-bench --compare`): ChadThrottle's backends (the four
//! eBPF ones and the nftables and tc_police fallbacks) beside what a user would reach for
//! instead — a tc-htb script (wondershaper) and trickle — over round-trip time, congestion
//! control, connections, direction and limit, with the latency an unlimited process sees
//! during each limited transfer. One table, one row per case, in the order of [`Matrix`]'s
//! fields; a backend the kernel refuses gets one row with the kernel's reason.

use crate::bench;
use crate::case::{Case, Outcome};
use crate::limiter::{Limiter, NotApplicable};
use crate::{Family, lab_datapath, table, trickle};
use chadthrottle_core::rate::format_rate;
use chadthrottle_core::status::Enforcement;
use chadthrottle_core::{Direction, PerDirection};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// What `chadthrottle limit` chooses with no backend named, per direction
    /// (`lab_datapath::default_enforcement`); the rows name the choice.
    Default,
    Policer,
    Shaping,
    /// Uploads only.
    Htb,
    /// Downloads only.
    Ifb,
    /// Both directions; the limited client runs in a cgroup of its own (the backend
    /// matches a process by its cgroup).
    Nftables,
    /// Downloads only.
    TcPolice,
    HtbScript,
    Trickle,
}

impl Backend {
    pub const ALL: [Backend; 8] = [
        Backend::Policer,
        Backend::Shaping,
        Backend::Htb,
        Backend::Ifb,
        Backend::Nftables,
        Backend::TcPolice,
        Backend::HtbScript,
        Backend::Trickle,
    ];

    /// Every word `--backends` takes: the default and each of [`Backend::ALL`].
    pub const CHOOSABLE: [Backend; 9] = {
        let mut choosable = [Backend::Default; 9];
        let mut index = 0;
        while index < Backend::ALL.len() {
            choosable[index + 1] = Backend::ALL[index];
            index += 1;
        }
        choosable
    };

    /// As `--backends` takes it.
    pub const fn word(self) -> &'static str {
        match self {
            Backend::Default => "default",
            Backend::Policer => "policer",
            Backend::Shaping => "shaping",
            Backend::Htb => "htb",
            Backend::Ifb => "ifb",
            Backend::Nftables => "nftables",
            Backend::TcPolice => "tc_police",
            Backend::HtbScript => "tc-htb",
            Backend::Trickle => "trickle",
        }
    }

    /// As the table shows it.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::HtbScript => "tc-htb script",
            other => other.word(),
        }
    }

    /// The datapath's enforcement; `None` for a peer (the datapath sets no limit).
    pub const fn enforcement(self) -> Option<Enforcement> {
        match self {
            Backend::Policer => Some(Enforcement::Policer),
            Backend::Shaping => Some(Enforcement::Shaping),
            Backend::Htb => Some(Enforcement::Htb),
            Backend::Ifb => Some(Enforcement::Ifb),
            Backend::Nftables => Some(Enforcement::Nftables),
            Backend::TcPolice => Some(Enforcement::TcPolice),
            Backend::Default | Backend::HtbScript | Backend::Trickle => None,
        }
    }

    /// Whether the datapath limits the flow (every backend of ChadThrottle's, the
    /// default's choice included, but not the peers).
    pub const fn uses_datapath(self) -> bool {
        self.enforcement().is_some() || matches!(self, Backend::Default)
    }

    /// The enforcement of each direction's cases: the backend's own, or the default's
    /// choice on this kernel.
    fn enforcements(self) -> anyhow::Result<PerDirection<Enforcement>> {
        Ok(match (self, self.enforcement()) {
            (Backend::Default, _) => PerDirection {
                up: lab_datapath::default_enforcement(Direction::Up)?,
                down: lab_datapath::default_enforcement(Direction::Down)?,
            },
            (_, enforcement) => {
                let enforcement = enforcement.unwrap_or_default();
                PerDirection {
                    up: enforcement,
                    down: enforcement,
                }
            }
        })
    }

    /// Whether it limits `direction` at all (htb, ifb and tc_police do one only, as
    /// `chadthrottle backends` lists them).
    pub const fn limits(self, direction: Direction) -> bool {
        !matches!(
            (self, direction),
            (Backend::Htb, Direction::Down) | (Backend::Ifb | Backend::TcPolice, Direction::Up)
        )
    }
}

/// Which cases run: every combination, nested in this order.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub backends: Vec<Backend>,
    pub rtts_ms: Vec<u64>,
    pub ccs: Vec<&'static str>,
    pub connections: Vec<usize>,
    pub directions: Vec<Direction>,
    /// Bytes per second.
    pub rates: Vec<u64>,
    pub seconds: f64,
}

impl Default for Matrix {
    /// The full table: every backend × 2 RTTs × 2 CCs × 2 connection counts × its
    /// directions × 5 limits, cases of 10 s.
    fn default() -> Matrix {
        Matrix {
            backends: Backend::CHOOSABLE.to_vec(),
            rtts_ms: vec![0, 20],
            ccs: vec!["cubic", "bbr"],
            connections: vec![1, 8],
            directions: Direction::ALL.to_vec(),
            rates: vec![100 << 10, 1 << 20, 10 << 20, 50 << 20, 200 << 20],
            seconds: 10.0,
        }
    }
}

const CASE_COLUMNS: [&str; 6] = ["backend", "RTT", "CC", "conns", "dir", "limit"];

/// The table's header.
pub fn header() -> String {
    let mut columns = CASE_COLUMNS.to_vec();
    columns.extend(table::FLOW_COLUMNS);
    columns.extend(table::LATENCY_COLUMNS);
    table::header(&columns)
}

fn width() -> usize {
    CASE_COLUMNS.len() + table::FLOW_COLUMNS.len() + table::LATENCY_COLUMNS.len()
}

/// A row: the case's cells, then `rest`, padded to the table's width.
fn row(first: Vec<String>, rest: impl IntoIterator<Item = String>) -> String {
    let mut cells = first;
    cells.extend(rest);
    cells.resize(width(), String::new());
    table::row(&cells)
}

/// The row of a case that ran, could not apply, or failed.
pub fn case_row(
    backend: Backend,
    rtt_ms: u64,
    case: &Case,
    result: &anyhow::Result<Outcome>,
) -> String {
    let name = match backend {
        Backend::Default => format!("default ({})", case.enforcement.name()),
        other => other.name().to_owned(),
    };
    let first = vec![
        name,
        format!("{rtt_ms} ms"),
        case.cc.to_owned(),
        case.connections.to_string(),
        case.direction.to_string(),
        format_rate(case.rate),
    ];
    match result {
        Ok(outcome) => row(
            first,
            table::flow_cells(outcome, case.rate as f64)
                .into_iter()
                .chain(table::latency_cells(outcome.latency.as_ref())),
        ),
        Err(error) => match error.downcast_ref::<NotApplicable>() {
            Some(reason) => row(first, [format!("n/a: {reason}")]),
            None => row(first, [format!("failed: {error:#}")]),
        },
    }
}

/// The one row of a backend the kernel refuses (none of its cases can run).
pub fn refused_row(backend: Backend, reason: &str) -> String {
    row(
        vec![backend.name().to_owned()],
        [format!("n/a: the kernel refuses it: {reason}")],
    )
}

/// The cases of one backend at one round-trip time, in table order.
fn cases(matrix: &Matrix, backend: Backend, enforcements: PerDirection<Enforcement>) -> Vec<Case> {
    let mut cases = Vec::new();
    for &cc in &matrix.ccs {
        for &connections in &matrix.connections {
            for &direction in matrix.directions.iter().filter(|&&d| backend.limits(d)) {
                cases.extend(matrix.rates.iter().map(|&rate| Case {
                    direction,
                    rate,
                    burst: None,
                    cc,
                    seconds: matrix.seconds,
                    idle: Duration::ZERO,
                    enforcement: *enforcements.get(direction),
                    connections,
                }));
            }
        }
    }
    cases
}

/// Runs every case of `matrix`, handing each line of the table to `emit` as it comes
/// (a case that fails gets its row and the run goes on). Once a backend is not
/// applicable in a direction, its later cases in that direction are not run: a peer that
/// does not limit the flow would only load the machine with an unlimited one.
pub fn run(matrix: &Matrix, mut emit: impl FnMut(String)) -> anyhow::Result<()> {
    emit(header());
    let mut delay_losses = 0;
    let mut delay_kind = None;
    for &backend in &matrix.backends {
        let trickle_binary = match backend {
            Backend::Trickle => match trickle::find() {
                Some(binary) => Some(binary),
                None => {
                    emit(row(
                        vec!["trickle".to_owned()],
                        ["not installed (apt-get install trickle)".to_owned()],
                    ));
                    continue;
                }
            },
            _ => None,
        };
        if let Some(reason) = backend.enforcement().and_then(lab_datapath::refusal) {
            emit(refused_row(backend, &reason));
            continue;
        }
        let enforcements = backend.enforcements()?;
        let mut not_applicable = PerDirection::<bool>::default();
        for &rtt_ms in &matrix.rtts_ms {
            let lab = bench::lab(rtt_ms)?;
            let mut datapath = backend
                .uses_datapath()
                .then(|| lab_datapath::install(&lab))
                .transpose()?;
            for case in cases(matrix, backend, enforcements) {
                let result = if *not_applicable.get(case.direction) {
                    Err(
                        NotApplicable(format!("as in the first {} case above", case.direction))
                            .into(),
                    )
                } else {
                    let mut limiter = match (&mut datapath, &trickle_binary) {
                        (Some(datapath), _) => Limiter::Datapath(datapath),
                        (None, Some(binary)) => Limiter::Trickle(binary),
                        (None, None) => Limiter::HtbScript,
                    };
                    bench::run_limited(&lab, &mut limiter, Family::V4, &case, true)
                };
                if result
                    .as_ref()
                    .is_err_and(|error| error.is::<NotApplicable>())
                {
                    *not_applicable.get_mut(case.direction) = true;
                }
                emit(case_row(backend, rtt_ms, &case, &result));
            }
            drop(datapath);
            delay_losses += lab.delay_losses();
            delay_kind = lab.delay_kind().or(delay_kind);
        }
    }
    if let Some(note) = crate::Lab::delay_note(delay_kind, delay_losses) {
        emit(format!("\n{note}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case() -> Case {
        Case {
            direction: Direction::Down,
            rate: 10 << 20,
            burst: None,
            cc: "bbr",
            seconds: 10.0,
            idle: Duration::ZERO,
            enforcement: Enforcement::Shaping,
            connections: 8,
        }
    }

    #[test]
    fn rows_are_as_wide_as_the_header() {
        let columns = header()
            .lines()
            .next()
            .map_or(0, |line| line.matches(" | ").count());
        let failed: anyhow::Result<Outcome> = Err(anyhow::anyhow!("lab gone"));
        let line = case_row(Backend::HtbScript, 20, &case(), &failed);
        assert_eq!(line.matches(" | ").count(), columns);
        assert!(
            line.starts_with(
                "| tc-htb script | 20 ms | bbr | 8 | down | 10MB/s | failed: lab gone |"
            ),
            "{line}"
        );
    }

    #[test]
    fn a_peer_that_cannot_act_is_not_applicable() {
        let result: anyhow::Result<Outcome> = Err(NotApplicable("no preload".to_owned()).into());
        let line = case_row(Backend::Trickle, 0, &case(), &result);
        assert!(line.contains("| 10MB/s | n/a: no preload |"), "{line}");
    }

    #[test]
    fn cases_nest_in_table_order() {
        let matrix = Matrix {
            rates: vec![1 << 20, 10 << 20],
            ..Matrix::default()
        };
        let policer = PerDirection {
            up: Enforcement::Policer,
            down: Enforcement::Policer,
        };
        let cases = cases(&matrix, Backend::Policer, policer);
        assert_eq!(cases.len(), 2 * 2 * 2 * 2);
        let key = |case: &Case| (case.cc, case.connections, case.direction, case.rate);
        assert_eq!(key(&cases[0]), ("cubic", 1, Direction::Up, 1 << 20));
        assert_eq!(key(&cases[1]), ("cubic", 1, Direction::Up, 10 << 20));
        assert_eq!(key(&cases[2]), ("cubic", 1, Direction::Down, 1 << 20));
        assert_eq!(key(&cases[15]), ("bbr", 8, Direction::Down, 10 << 20));
        assert!(
            cases
                .iter()
                .all(|case| case.enforcement == Enforcement::Policer)
        );
    }

    #[test]
    fn only_chadthrottle_backends_use_the_datapath() {
        let with_datapath: Vec<_> = Backend::ALL
            .iter()
            .filter(|backend| backend.enforcement().is_some())
            .collect();
        assert_eq!(
            with_datapath,
            [
                &Backend::Policer,
                &Backend::Shaping,
                &Backend::Htb,
                &Backend::Ifb,
                &Backend::Nftables,
                &Backend::TcPolice
            ]
        );
    }

    #[test]
    fn a_datapath_backend_is_named_and_directed_as_chadthrottle_backends_lists_it() {
        let descriptors = chadthrottle_kernel::probe::descriptors();
        for backend in Backend::ALL {
            let Some(enforcement) = backend.enforcement() else {
                continue;
            };
            assert_eq!(backend.word(), enforcement.name());
            let descriptor = descriptors
                .iter()
                .find(|descriptor| descriptor.name == enforcement.name())
                .unwrap_or_else(|| panic!("{} has no descriptor", backend.word()));
            for direction in Direction::ALL {
                assert_eq!(
                    backend.limits(direction),
                    *descriptor.directions.get(direction),
                    "{} {direction}",
                    backend.word()
                );
            }
        }
    }

    #[test]
    fn a_refused_backend_is_one_row_with_the_kernel_s_reason() {
        let line = refused_row(Backend::TcPolice, "no act_police");
        assert_eq!(line.matches(" | ").count(), width() - 1);
        assert!(
            line.starts_with("| tc_police | n/a: the kernel refuses it: no act_police |"),
            "{line}"
        );
    }

    fn shaped() -> PerDirection<Enforcement> {
        PerDirection {
            up: Enforcement::Shaping,
            down: Enforcement::Shaping,
        }
    }

    #[test]
    fn the_default_runs_both_directions_each_with_its_choice_named() {
        let chosen = PerDirection {
            up: Enforcement::Shaping,
            down: Enforcement::Ifb,
        };
        let cases = cases(&Matrix::default(), Backend::Default, chosen);
        assert!(cases.iter().any(|case| case.direction == Direction::Up));
        for case in &cases {
            assert_eq!(case.enforcement, *chosen.get(case.direction));
        }
        assert!(Backend::Default.uses_datapath());
        assert!(!Backend::HtbScript.uses_datapath());
        let failed: anyhow::Result<Outcome> = Err(anyhow::anyhow!("lab gone"));
        let down = cases
            .iter()
            .find(|case| case.direction == Direction::Down)
            .expect("a download case");
        assert!(
            case_row(Backend::Default, 0, down, &failed).starts_with("| default (ifb) | 0 ms |")
        );
    }

    #[test]
    fn the_qdisc_backends_run_their_own_direction_only() {
        let directions = |backend| {
            let mut found: Vec<Direction> = cases(&Matrix::default(), backend, shaped())
                .iter()
                .map(|case| case.direction)
                .collect();
            found.dedup();
            found.sort();
            found.dedup();
            found
        };
        assert_eq!(directions(Backend::Htb), [Direction::Up]);
        assert_eq!(directions(Backend::Ifb), [Direction::Down]);
        assert_eq!(directions(Backend::TcPolice), [Direction::Down]);
        assert_eq!(directions(Backend::Nftables), Direction::ALL);
        assert_eq!(directions(Backend::Shaping), Direction::ALL);
    }
}
