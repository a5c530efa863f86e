//! `ct-bench`: ChadThrottle's benchmark, in the network lab (needs root).
//!
//! ```text
//! cargo run --release -p chadthrottle-lab --bin ct-bench               # the baseline table
//! cargo run --release -p chadthrottle-lab --bin ct-bench -- --burst    # choosing the default burst
//! cargo run --release -p chadthrottle-lab --bin ct-bench -- --monitor  # accounting and `top` costs
//!     (--monitor runs target/release/chadthrottle: `cargo build --release --workspace` first;
//!      install Debian's nethogs to measure it side by side)
//! cargo run --release -p chadthrottle-lab --bin ct-bench -- --shaper-cost  # the shaper's CPU per 1 000 sockets
//! cargo run --release -p chadthrottle-lab --bin ct-bench -- --rules-cost  # rules: per packet, per exec, fork, exit
//! cargo build --release --workspace && sudo target/release/ct-bench --rule-budgets  # rules: accuracy, apply
//!     (--apply-only: only `apply`'s time; --tree-only: only the tree of short downloaders,
//!      its rule's download held by shaping, then by ifb)
//! cargo run --release -p chadthrottle-lab --bin ct-bench -- --metrics-scrape  # a metrics scrape (no root)
//! cargo build --release --workspace && sudo target/release/ct-bench --daemon-cost  # the daemon's CPU
//!     (1 000 processes holding a connection, a 1 Gbit/s flow, 60 s at 10 s sampling;
//!      --processes N, --mbit M, --seconds S)
//! cargo build --release --workspace && sudo target/release/ct-bench --usage-accuracy  # `usage` vs
//!     the generator over 600 s (--seconds S) at 100 Mbit/s (--mbit M), the daemon restarted
//!     twice and killed once
//! cargo run --release -p chadthrottle-lab --bin ct-bench -- --backend-cost  # each backend's CPU
//!     per GB and time to take hold (8 connections at 1 and 1.6 Gbit/s, or --mbit M; --rounds N,
//!     --seconds S of CPU window (default 4), --backends as for --compare)
//! cargo run --release -p chadthrottle-lab --bin ct-bench -- --compare  # backends and peers
//!     (one table: backend × RTT × CC × connections × direction × limit, cases of 10 s,
//!      each with a latency probe; the trickle rows need Debian's trickle, else "not installed")
//! options: --seconds S (default 10), --rtt 0,20 (default both), --cc cubic,bbr (default both),
//!          --bursts 50,100,… (sweep bursts, ms of the rate), --idle MS (sweep idle spell),
//!          --overhead (only attached vs detached), --rounds N (its rounds, default 7)
//! --compare filters (lists, default all):
//!          --backends default,policer,shaping,htb,ifb,nftables,tc_police,tc-htb,trickle
//!          (a backend the kernel refuses gets one row with the reason, e.g. tc_police
//!           without act_police)
//!          --connections 1,8  --dirs up,down  --limits 100K,1M,10M,50M,200M (1024-based)
//! ```
//!
//! Prints Markdown tables as it goes; BENCHMARKS.md holds a recorded run.

use anyhow::{Context as _, bail};
use chadthrottle_core::Direction;
use chadthrottle_core::rate::format_rate;
use chadthrottle_lab::bench::{self, lab};
use chadthrottle_lab::case::{Case, Outcome};
use chadthrottle_lab::compare::{self, Matrix};
use chadthrottle_lab::lab_datapath;
use chadthrottle_lab::table::{self, header, percent};
use chadthrottle_lab::{Family, filters, stats};
use std::time::Duration;

const RATES: [u64; 4] = [100 * 1024, 1 << 20, 10 << 20, 50 << 20];

struct Options {
    seconds: f64,
    rtts: Vec<u64>,
    ccs: Vec<&'static str>,
    burst_sweep: bool,
    /// Bursts of the sweep, in ms of the rate.
    bursts_ms: Vec<u64>,
    /// Idle spell before each sweep transfer; `None`: burst + 300 ms (fills the bucket).
    idle_ms: Option<u64>,
    /// Only the attached/detached comparison, with this many rounds.
    overhead_only: bool,
    overhead_rounds: usize,
    /// The monitoring costs instead of the policer table.
    monitor: bool,
    /// The comparison table, with these cases.
    compare: Option<Matrix>,
    /// Each of these backends' CPU cost and time to take hold.
    backend_cost: Option<Vec<compare::Backend>>,
    /// The shaping backend's control loop cost.
    shaper_cost: bool,
    /// What rules cost per packet and per exec.
    rules_cost: bool,
    /// How rules hold their budgets; `apply`'s time.
    rule_budgets: bool,
    /// Of those, `apply`'s time only.
    apply_only: bool,
    /// Of those, the tree of short downloaders only.
    tree_only: bool,
    /// What the metrics endpoint's scrape and sample cost (no lab, no root).
    metrics_scrape: bool,
    /// Whether `--seconds` was given (the daemon's runs have their own defaults).
    seconds_given: bool,
    /// The daemon's CPU while processes hold connections and a flow runs.
    daemon_cost: bool,
    /// `usage` against the generator over a long run.
    usage_accuracy: bool,
    /// Processes holding a connection in `--daemon-cost`.
    processes: usize,
    /// The flow's rate in the daemon's runs, Mbit/s (10^6).
    mbit: Option<u64>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        seconds: 10.0,
        rtts: vec![0, 20],
        ccs: vec!["cubic", "bbr"],
        burst_sweep: false,
        bursts_ms: vec![50, 100, 200, 500, 1000],
        idle_ms: None,
        overhead_only: false,
        overhead_rounds: 7,
        monitor: false,
        compare: None,
        backend_cost: None,
        shaper_cost: false,
        rules_cost: false,
        rule_budgets: false,
        apply_only: false,
        tree_only: false,
        metrics_scrape: false,
        seconds_given: false,
        daemon_cost: false,
        usage_accuracy: false,
        processes: 1000,
        mbit: None,
    };
    let mut matrix = Matrix::default();
    let mut compare = false;
    let mut backend_cost = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => {
                options.seconds = value()?.parse()?;
                options.seconds_given = true;
            }
            "--daemon-cost" => options.daemon_cost = true,
            "--usage-accuracy" => options.usage_accuracy = true,
            "--processes" => options.processes = value()?.parse()?,
            "--mbit" => options.mbit = Some(value()?.parse()?),
            "--rtt" => options.rtts = filters::rtts(&value()?)?,
            "--cc" => options.ccs = filters::ccs(&value()?)?,
            "--compare" => compare = true,
            "--backend-cost" => backend_cost = true,
            "--backends" => matrix.backends = filters::backends(&value()?)?,
            "--connections" => matrix.connections = filters::connections(&value()?)?,
            "--dirs" => matrix.directions = filters::directions(&value()?)?,
            "--limits" => matrix.rates = filters::rates(&value()?)?,
            "--burst" => options.burst_sweep = true,
            "--bursts" => {
                options.bursts_ms = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--idle" => options.idle_ms = Some(value()?.parse()?),
            "--overhead" => options.overhead_only = true,
            "--monitor" => options.monitor = true,
            "--shaper-cost" => options.shaper_cost = true,
            "--rules-cost" => options.rules_cost = true,
            "--rule-budgets" => options.rule_budgets = true,
            "--apply-only" => options.apply_only = true,
            "--tree-only" => options.tree_only = true,
            "--metrics-scrape" => options.metrics_scrape = true,
            "--rounds" => options.overhead_rounds = value()?.parse()?,
            other => bail!(
                "unknown argument {other:?}; see the header of crates/chadthrottle-lab/src/bin/ct-bench.rs"
            ),
        }
    }
    if backend_cost {
        options.backend_cost = Some(matrix.backends.clone());
    }
    if compare {
        options.compare = Some(Matrix {
            rtts_ms: options.rtts.clone(),
            ccs: options.ccs.clone(),
            seconds: options.seconds,
            ..matrix
        });
    }
    Ok(options)
}

fn row(cells: &[String]) {
    println!("{}", table::row(cells));
}

fn baseline(options: &Options) -> anyhow::Result<()> {
    println!(
        "## Policer: steady state per limit ({} s transfers, steady = after 3 s)\n",
        options.seconds
    );
    let mut columns = vec!["RTT", "CC", "dir", "limit"];
    columns.extend(table::FLOW_COLUMNS);
    columns.push("10 s average error");
    println!("{}", header(&columns));
    for &rtt in &options.rtts {
        let lab = lab(rtt)?;
        let mut datapath = lab_datapath::install(&lab)?;
        for &cc in &options.ccs {
            for direction in Direction::ALL {
                for rate in RATES {
                    let case = Case {
                        direction,
                        rate,
                        burst: None,
                        cc,
                        seconds: options.seconds,
                        idle: Duration::ZERO,
                        // the recorded baseline is the policer's; --compare has the rest
                        enforcement: chadthrottle_core::status::Enforcement::Policer,
                        connections: 1,
                    };
                    let outcome = bench::run_case(&lab, &mut datapath, Family::V4, &case)?;
                    print_outcome(rtt, &case, &outcome);
                }
            }
        }
        drop(datapath);
        if let Some(note) = chadthrottle_lab::Lab::delay_note(lab.delay_kind(), lab.delay_losses())
        {
            println!("\n{note}\n");
        }
    }
    overhead(options.overhead_rounds)
}

fn print_outcome(rtt: u64, case: &Case, outcome: &Outcome) {
    let limit = case.rate as f64;
    let mut cells = vec![
        format!("{rtt} ms"),
        case.cc.to_owned(),
        case.direction.to_string(),
        format_rate(case.rate),
    ];
    cells.extend(table::flow_cells(outcome, limit));
    cells.push(percent(stats::error(outcome.whole.rate, limit)));
    row(&cells);
}

/// Unthrottled throughput with the datapath attached and detached, alternating, so that
/// drifts of the machine hit both alike; medians, since an unlimited flow on 2 cores
/// swings by ±15 % on its own.
fn overhead(rounds: usize) -> anyhow::Result<()> {
    println!(
        "\n## Unthrottled TCP upload: datapath detached, attached without accounting, attached \
         with accounting ({rounds} rounds of 3 s each, interleaved)\n"
    );
    let lab = lab(0)?;
    let mut rates: [Vec<f64>; 3] = Default::default();
    for _round in 0..rounds {
        chadthrottle_kernel::reset(lab.pin_dir())?;
        rates[0].push(bench::unlimited_rate(&lab, 3.0)?);
        for (slot, accounting) in [(1, false), (2, true)] {
            let datapath = lab_datapath::install_with(&lab, accounting)?;
            rates[slot].push(bench::unlimited_rate(&lab, 3.0)?);
            drop(datapath);
            chadthrottle_kernel::reset(lab.pin_dir())?;
        }
    }
    let median = |rates: &[f64]| {
        let mut sorted = rates.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    println!("{}", header(&["datapath", "MiB/s per round", "median"]));
    let names = [
        "detached",
        "attached, accounting off",
        "attached, accounting on",
    ];
    for (name, rates) in names.iter().zip(&rates) {
        let list: Vec<String> = rates
            .iter()
            .map(|r| format!("{:.0}", r / 1048576.0))
            .collect();
        row(&[
            (*name).to_owned(),
            list.join(", "),
            format!("{:.0}", median(rates) / 1048576.0),
        ]);
    }
    let detached = median(&rates[0]);
    println!(
        "\nmedians against detached: accounting off {}, accounting on {}",
        percent(median(&rates[1]) / detached - 1.0),
        percent(median(&rates[2]) / detached - 1.0)
    );
    Ok(())
}

/// What the accounting and `top` cost: per-packet program time, `top`'s CPU per refresh
/// (beside nethogs if installed), and unthrottled throughput attached vs detached.
fn shaper_cost(seconds: f64) -> anyhow::Result<()> {
    use chadthrottle_core::status::Enforcement;
    use chadthrottle_lab::bench_shaper;
    let lab = lab(0)?;
    println!(
        "## The shaper's control loop: one process, N TCP connections all sending under one \
         upload limit of 100 MiB/s ({seconds} s, run-time statistics on)\n"
    );
    println!(
        "{}",
        header(&[
            "backend",
            "sockets",
            "`limit` took",
            "ct_sock_ops runs",
            "ns per run",
            "share of one core",
            "goodput",
        ])
    );
    for sockets in [1, 100, 1000] {
        for enforcement in [Enforcement::Policer, Enforcement::Shaping] {
            let cost = bench_shaper::shaper_cost(&lab, sockets, 100 << 20, enforcement, seconds)?;
            row(&[
                enforcement.name().to_owned(),
                sockets.to_string(),
                format!("{:.1} ms", cost.limit_ms),
                cost.sock_ops_runs.to_string(),
                format!("{:.0}", cost.sock_ops_ns_per_run),
                format!("{:.3} %", cost.sock_ops_core_share * 100.0),
                format_rate(cost.rate as u64),
            ]);
        }
    }
    Ok(())
}

/// What rules cost: the policer's time per packet with no rule and with 4 096 (one of
/// them governing 1 000 sleeping processes), and the exec, fork and exit hooks' time per run.
fn rules_cost(seconds: f64) -> anyhow::Result<()> {
    use chadthrottle_lab::bench_rules;
    let lab = lab(0)?;
    println!("## Rules: program time per run (run-time statistics on; {seconds} s TCP uploads)\n");
    println!(
        "{}",
        header(&[
            "rules",
            "members",
            "`set_rule` took",
            "`set_rules` of the rest took",
            "listing them took",
            "`ct_members` entries",
            "ct_egress, unlimited",
            "ct_egress, member",
            "ct_process_exec",
            "ct_process_fork",
            "ct_process_exit",
            "exec, member shell",
            "fork, member shell",
            "exit, member shell",
        ])
    );
    // the last row fills the member table (65 536 by default) to about 65 000 entries: the
    // room left is for the hooks' members meanwhile (16 was once too few)
    let full = chadthrottle_kernel::DEFAULT_MAX_MEMBERS as usize - 536 - 1000;
    for (rules, members, filled) in [(0, 0, 0), (2, 1000, 0), (4096, 1000, 0), (4096, 1000, full)] {
        let cost = bench_rules::rules_cost(&lab, rules, members, filled, seconds)?;
        row(&[
            cost.rules.to_string(),
            cost.members.to_string(),
            format!("{:.1} ms", cost.set_rule_ms),
            format!("{:.1} ms", cost.set_rest_ms),
            format!("{:.1} ms", cost.list_ms),
            cost.member_entries.to_string(),
            format!("{:.0} ns", cost.unlimited_ns),
            format!("{:.0} ns", cost.member_ns),
            format!("{:.0} ns ({} runs)", cost.exec_ns, cost.exec_runs),
            format!("{:.0} ns ({} runs)", cost.fork_ns, cost.fork_runs),
            format!("{:.0} ns", cost.exit_ns),
            format!("{:.0} ns", cost.member_exec_ns),
            format!("{:.0} ns", cost.member_fork_ns),
            format!("{:.0} ns", cost.member_exit_ns),
        ]);
    }
    Ok(())
}

/// `chadthrottle apply` of a 1 000-rule file, timed.
fn apply_time(lab: &chadthrottle_lab::Lab) -> anyhow::Result<()> {
    println!("\n## Rules: `chadthrottle apply` of a rules file (wall time of the command)\n");
    println!("{}", header(&["rules", "apply", "apply again (no change)"]));
    let (first, again) = chadthrottle_lab::bench_rule_budgets::apply_time(lab, 1000)?;
    row(&[
        "1000".to_owned(),
        format!("{first:.2} s"),
        format!("{again:.2} s"),
    ]);
    Ok(())
}

/// A tree rule of 1 MiB/s over 20 short downloaders at RTT 0, its download held by
/// shaping (a rule's default) and by ifb.
fn tree_table(
    lab: &chadthrottle_lab::Lab,
    datapath: &mut chadthrottle_kernel::Datapath,
) -> anyhow::Result<()> {
    use chadthrottle_core::status::Enforcement;
    println!("\n## Rules: a tree rule over a shell that runs 20 downloaders one after another\n");
    println!(
        "{}",
        header(&[
            "backend",
            "budget",
            "burst",
            "downloads",
            "bytes",
            "wall time",
            "bytes / time",
            "(bytes − burst) / time, error",
            "the rule's budget passed",
            "dropped by the policer",
        ])
    );
    let rate = 1 << 20;
    for backend in [Enforcement::Shaping, Enforcement::Ifb] {
        let tree = chadthrottle_lab::bench_rule_budgets::tree_case(
            lab,
            datapath,
            backend,
            rate,
            20,
            512 << 10,
        )?;
        let past_burst = tree.bytes.saturating_sub(tree.burst) as f64 / tree.seconds;
        row(&[
            backend.name().to_owned(),
            format_rate(rate),
            format!("{} KiB", tree.burst >> 10),
            tree.downloads.to_string(),
            format!("{} KiB", tree.bytes >> 10),
            format!("{:.2} s", tree.seconds),
            format_rate((tree.bytes as f64 / tree.seconds) as u64),
            format!(
                "{} ({})",
                format_rate(past_burst as u64),
                percent(stats::error(past_burst, rate as f64))
            ),
            format!("{} KiB", tree.rule_bytes >> 10),
            format!("{} packets", tree.dropped_packets),
        ]);
    }
    Ok(())
}

fn rule_budgets(options: &Options) -> anyhow::Result<()> {
    use chadthrottle_core::status::Enforcement;
    use chadthrottle_lab::bench_rule_budgets as budgets;
    use chadthrottle_lab::programs::Programs;
    const RATE: u64 = 2 << 20;
    if options.apply_only {
        let lab = lab(0)?;
        let _datapath = lab_datapath::install(&lab)?;
        return apply_time(&lab);
    }
    if options.tree_only {
        let lab = lab(0)?;
        let mut datapath = lab_datapath::install(&lab)?;
        return tree_table(&lab, &mut datapath);
    }
    let programs = Programs::new("bench")?;
    let app = programs.install("ct-bench-app")?;
    println!(
        "## Rules: four processes of one executable, 2 MiB/s ({} s, steady = after the warm-up)
",
        options.seconds
    );
    println!(
        "{}",
        header(&[
            "RTT",
            "mode",
            "dir",
            "budget",
            "aggregate",
            "aggregate error",
            "cv",
            "each process (error against its share or its budget)",
        ])
    );
    for &rtt in &options.rtts {
        let lab = lab(rtt)?;
        let mut datapath = lab_datapath::install(&lab)?;
        // a shared rule's download once more, held by ifb
        let cases = [
            (false, Direction::Up, Enforcement::Shaping),
            (false, Direction::Down, Enforcement::Shaping),
            (false, Direction::Down, Enforcement::Ifb),
            (true, Direction::Up, Enforcement::Shaping),
            (true, Direction::Down, Enforcement::Shaping),
        ];
        for (each, direction, backend) in cases {
            let app_rule = budgets::AppRule {
                direction,
                each,
                backend,
                rate: RATE,
            };
            let case = budgets::app_case(&lab, &mut datapath, &app, app_rule, options.seconds)?;
            let (budget, share) = if each {
                (4.0 * RATE as f64, RATE as f64)
            } else {
                (RATE as f64, RATE as f64 / 4.0)
            };
            let split: Vec<String> = case
                .each_rate
                .iter()
                .map(|&rate| {
                    format!(
                        "{} ({})",
                        format_rate(rate as u64),
                        percent(stats::error(rate, share))
                    )
                })
                .collect();
            row(&[
                format!("{rtt} ms"),
                match (each, backend) {
                    (true, _) => "each".to_owned(),
                    (false, Enforcement::Shaping) => "shared".to_owned(),
                    (false, other) => format!("shared, {}", other.name()),
                },
                format!("{direction:?}").to_lowercase(),
                format_rate(budget as u64),
                format_rate(case.aggregate.rate as u64),
                percent(stats::error(case.aggregate.rate, budget)),
                format!("{:.1} %", case.aggregate.cv * 100.0),
                split.join(", "),
            ]);
        }
    }
    {
        let lab = lab(0)?;
        let mut datapath = lab_datapath::install(&lab)?;
        tree_table(&lab, &mut datapath)?;
        println!("\n## Rules: an exec storm under an exe rule (each process sends one datagram)\n");
        println!(
            "{}",
            header(&[
                "asked",
                "execs",
                "seconds",
                "execs/s",
                "failed",
                "datagrams the rule passed (matched)",
                "datagrams received",
            ])
        );
        let storm = budgets::exec_storm(&lab, &mut datapath, &programs, 2000, 10)?;
        row(&[
            "2000/s × 10 s".to_owned(),
            storm.execs.to_string(),
            format!("{:.2}", storm.seconds),
            format!("{:.0}", storm.execs as f64 / storm.seconds),
            storm.failed.to_string(),
            storm.matched.to_string(),
            storm.received.to_string(),
        ]);
        apply_time(&lab)?;
    }
    Ok(())
}

/// The `chadthrottle` binary built beside this one.
fn chadthrottle_binary() -> anyhow::Result<std::path::PathBuf> {
    let chadthrottle = std::env::current_exe()?.with_file_name("chadthrottle");
    if !chadthrottle.exists() {
        bail!(
            "{} is missing: run `cargo build --release --workspace` first",
            chadthrottle.display()
        );
    }
    Ok(chadthrottle)
}

/// The machine's load average (1, 5, 15 min), printed beside each figure of a shared
/// machine.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|error| format!("unknown ({error})"))
}

fn daemon_cost(options: &Options) -> anyhow::Result<()> {
    use chadthrottle_lab::bench_daemon;
    let chadthrottle = chadthrottle_binary()?;
    let seconds = if options.seconds_given {
        options.seconds
    } else {
        60.0
    };
    let rate = options.mbit.unwrap_or(1000) * 1_000_000 / 8;
    println!(
        "## The daemon's CPU: {} processes holding a connection, a flow paced at {} Mbit/s, \
         {seconds} s at 10 s sampling\n",
        options.processes,
        rate * 8 / 1_000_000
    );
    let load_before = load_average();
    let cost =
        bench_daemon::daemon_cost(&lab(0)?, &chadthrottle, options.processes, rate, seconds)?;
    println!(
        "{}",
        header(&[
            "processes",
            "flow carried",
            "window",
            "daemon CPU (window)",
            "daemon CPU (from its start)",
            "samples written",
            "load before",
            "load after",
        ])
    );
    row(&[
        cost.processes.to_string(),
        format!("{:.0} Mbit/s", cost.carried * 8.0 / 1e6),
        format!("{:.1} s", cost.window.as_secs_f64()),
        format!("{:.3} % of a core", cost.window_share * 100.0),
        format!("{:.3} % of a core", cost.whole_share * 100.0),
        format!("{:.0}", cost.samples_written),
        load_before,
        load_average(),
    ]);
    Ok(())
}

fn usage_accuracy(options: &Options) -> anyhow::Result<()> {
    use chadthrottle_lab::bench_daemon;
    let chadthrottle = chadthrottle_binary()?;
    let seconds = if options.seconds_given {
        options.seconds
    } else {
        600.0
    };
    let rate = options.mbit.unwrap_or(100) * 1_000_000 / 8;
    println!(
        "## `usage` against the generator: {seconds} s at {} Mbit/s, up and down in turn, \
         10 s sampling\n",
        rate * 8 / 1_000_000
    );
    let load_before = load_average();
    let accuracy = bench_daemon::usage_accuracy(&lab(0)?, &chadthrottle, rate, seconds)?;
    for (at, event) in &accuracy.events {
        println!("- at {at:.0} s: {event}");
    }
    println!(
        "\n{}",
        header(&[
            "direction",
            "generator",
            "usage",
            "error",
            "load before",
            "load after"
        ])
    );
    let load_after = load_average();
    for (direction, generator, usage) in [
        ("up", accuracy.sent, accuracy.usage_sent),
        ("down", accuracy.received, accuracy.usage_received),
    ] {
        row(&[
            direction.to_owned(),
            format!("{generator} B"),
            format!("{usage} B"),
            format!(
                "{:+.3} %",
                stats::error(usage as f64, generator as f64) * 100.0
            ),
            load_before.clone(),
            load_after.clone(),
        ]);
    }
    Ok(())
}

fn monitor(options: &Options) -> anyhow::Result<()> {
    use chadthrottle_lab::bench_monitor;
    let chadthrottle = chadthrottle_binary()?;
    let lab = lab(0)?;
    println!(
        "## Datapath programs per packet (unthrottled TCP upload, 3 s, run-time statistics on)\n"
    );
    println!(
        "{}",
        header(&[
            "accounting",
            "flow MiB/s",
            "program",
            "runs",
            "ns per run",
            "share of one core",
        ])
    );
    for accounting in [false, true] {
        let (rate, costs) = bench_monitor::program_costs(&lab, 3.0, accounting)?;
        for cost in costs {
            row(&[
                if accounting { "on" } else { "off" }.to_owned(),
                format!("{:.0}", rate / 1048576.0),
                cost.name,
                cost.runs.to_string(),
                format!("{:.0}", cost.ns_per_run),
                format!("{:.2} %", cost.core_share * 100.0),
            ]);
        }
    }
    chadthrottle_kernel::reset(lab.pin_dir())?;

    println!("\n## CPU of `chadthrottle top --json --interval 1s` (10 refreshes)\n");
    println!(
        "{}",
        header(&[
            "scene",
            "top: CPU ms per refresh",
            "nethogs -t: CPU ms per refresh",
        ])
    );
    for cost in bench_monitor::top_costs(&lab, &chadthrottle)? {
        row(&[
            cost.scene,
            format!("{:.2}", cost.top_ms_per_refresh),
            cost.nethogs_ms_per_refresh
                .map_or("not installed / not run".to_owned(), |ms| {
                    format!("{ms:.2}")
                }),
        ]);
    }
    chadthrottle_kernel::reset(lab.pin_dir())?;
    drop(lab);

    if let Some((alone, watched)) =
        bench_monitor::nethogs_overhead(&self::lab(0)?, options.overhead_rounds)?
    {
        let median = |mut rates: Vec<f64>| {
            rates.sort_by(f64::total_cmp);
            rates[rates.len() / 2]
        };
        let (alone, watched) = (median(alone), median(watched));
        println!(
            "\n## Unthrottled TCP upload alone vs watched by nethogs (medians of {} rounds)\n\nalone {:.0} MiB/s, with nethogs {:.0} MiB/s: {}",
            options.overhead_rounds,
            alone / 1048576.0,
            watched / 1048576.0,
            percent(watched / alone - 1.0)
        );
    }
    overhead(options.overhead_rounds)
}

/// Accuracy against the burst: both the steady state (needs burst for TCP to recover
/// from drops) and a 10 s transfer that starts on a bucket filled by an idle spell (a
/// burst lets that much through on top of the rate).
fn burst_sweep(options: &Options) -> anyhow::Result<()> {
    let idle = |burst_ms: u64| options.idle_ms.unwrap_or(burst_ms + 300);
    println!(
        "## Burst sweep ({} s transfers; idle before each: {})\n",
        options.seconds,
        options
            .idle_ms
            .map_or("burst + 300 ms".to_owned(), |ms| format!("{ms} ms"))
    );
    println!(
        "{}",
        header(&[
            "RTT",
            "CC",
            "dir",
            "limit",
            "burst",
            "steady error",
            "cv",
            "retransmits",
            "10 s average error",
        ])
    );
    for &rtt in &options.rtts {
        let lab = lab(rtt)?;
        let mut datapath = lab_datapath::install(&lab)?;
        for &cc in &options.ccs {
            for direction in Direction::ALL {
                for rate in [1 << 20, 10 << 20, 50 << 20] {
                    for &burst_ms in &options.bursts_ms {
                        let burst = (rate * burst_ms / 1000).max(1500);
                        let case = Case {
                            direction,
                            rate,
                            burst: Some(burst),
                            cc,
                            seconds: options.seconds,
                            idle: Duration::from_millis(idle(burst_ms)),
                            // the burst is the policer's parameter
                            enforcement: chadthrottle_core::status::Enforcement::Policer,
                            connections: 1,
                        };
                        let outcome = bench::run_case(&lab, &mut datapath, Family::V4, &case)?;
                        let limit = rate as f64;
                        row(&[
                            format!("{rtt} ms"),
                            cc.to_owned(),
                            direction.to_string(),
                            format_rate(rate),
                            format!("{burst_ms} ms"),
                            percent(stats::error(outcome.steady.rate, limit)),
                            format!("{:.1} %", outcome.steady.cv * 100.0),
                            outcome.retransmits.to_string(),
                            percent(stats::error(outcome.whole.rate, limit)),
                        ]);
                    }
                }
            }
        }
    }
    Ok(())
}

/// What the metrics endpoint costs with 1 000 applications of two processes (every tenth
/// under a rule, the first process of every seventh other under a PID limit): taking in a sample, and
/// a scrape's work — the figures exported and written as text — with the default cap of
/// 50 labelled applications and with every application labelled. The median of 21 runs
/// after a warm-up; the HTTP layer adds a loopback round trip (the endpoint's test
/// `a_scrape_of_a_thousand_applications_answers_in_time` prints a whole scrape over TCP).
fn metrics_scrape() -> anyhow::Result<()> {
    use chadthrottle_core::metrics::{DEFAULT_TOP_APPLICATIONS, DaemonHealth, MetricsState};
    use chadthrottle_core::metrics_fixtures::busy_machine;
    use chadthrottle_core::metrics_text;
    use std::time::Instant;
    const APPLICATIONS: u32 = 1000;
    const RUNS: u64 = 21;
    let median_ms = |mut times: Vec<Duration>| {
        times.sort_unstable();
        times[times.len() / 2].as_secs_f64() * 1e3
    };
    println!("## Metrics: one sample and one scrape, {APPLICATIONS} applications\n");
    println!(
        "{}",
        header(&[
            "labelled applications",
            "taking in a sample",
            "a scrape (export + text)",
            "text",
            "samples",
        ])
    );
    for top in [DEFAULT_TOP_APPLICATIONS, APPLICATIONS as usize] {
        let mut state = MetricsState::new(top);
        let mut record_times = Vec::new();
        let mut scrape_times = Vec::new();
        let mut text = String::new();
        for round in 0..=RUNS {
            let (usage, status) = busy_machine(APPLICATIONS, round + 1);
            let started = Instant::now();
            state.record(&usage, &status);
            let recorded = started.elapsed();
            let started = Instant::now();
            text = metrics_text::encode(state.export(), Some(DaemonHealth::default()))
                .context("writing the metrics")?;
            let scraped = started.elapsed();
            if round > 0 {
                record_times.push(recorded);
                scrape_times.push(scraped);
            }
        }
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        row(&[
            format!("{top} + other"),
            format!("{:.2} ms", median_ms(record_times)),
            format!("{:.2} ms", median_ms(scrape_times)),
            format!("{} KiB", text.len() / 1024),
            samples.to_string(),
        ]);
    }
    Ok(())
}

/// The comparison table, under the command line that made it.
fn comparison(matrix: &Matrix) -> anyhow::Result<()> {
    let command: Vec<String> = std::env::args().collect();
    println!("```\n{}\n```\n", command.join(" "));
    println!(
        "## ChadThrottle's backends and peers ({} s transfers, steady = after {:.1} s; latency: an \
         unlimited process pair's 64 B round trips every 5 ms, alone for 1 s before the \
         transfer vs during its steady state)\n",
        matrix.seconds,
        bench::warmup_ns(matrix.seconds) as f64 / 1e9
    );
    compare::run(matrix, |line| println!("{line}"))
}

/// Issue 16: each backend's CPU per GB and time to take hold, beside an unlimited flow.
fn backend_cost(options: &Options, backends: &[compare::Backend]) -> anyhow::Result<()> {
    use chadthrottle_lab::bench_backend_cost::{self, CONNECTIONS};
    let rates = match options.mbit {
        Some(mbit) => vec![mbit * 1_000_000 / 8],
        None => vec![125_000_000, 200_000_000],
    };
    let window = if options.seconds_given {
        options.seconds
    } else {
        4.0
    };
    let command: Vec<String> = std::env::args().collect();
    println!("```\n{}\n```\n", command.join(" "));
    println!(
        "## What a limit costs: the whole machine's CPU over {window} s while one client's \
         {CONNECTIONS} TCP connections carry the target, and how fast a limit takes hold \
         ({} rounds, the backends in turn; min / median over the rounds)\n",
        options.overhead_rounds
    );
    let lab = lab(0)?;
    bench_backend_cost::measure(
        &lab,
        backends,
        &rates,
        options.overhead_rounds,
        Duration::from_secs_f64(window),
        |line| println!("{line}"),
    )
}

fn main() -> anyhow::Result<()> {
    chadthrottle_lab::run_if_endpoint();
    let options = options()?;
    if options.metrics_scrape {
        // pure computation: no lab, no root
        return metrics_scrape();
    }
    if let Some(reason) = chadthrottle_lab::unavailable() {
        bail!("{reason}");
    }
    if let Some(matrix) = &options.compare {
        comparison(matrix)
    } else if let Some(backends) = &options.backend_cost {
        backend_cost(&options, backends)
    } else if options.monitor {
        monitor(&options)
    } else if options.daemon_cost {
        daemon_cost(&options)
    } else if options.usage_accuracy {
        usage_accuracy(&options)
    } else if options.rules_cost {
        rules_cost(options.seconds.min(5.0))
    } else if options.rule_budgets {
        rule_budgets(&options)
    } else if options.shaper_cost {
        shaper_cost(options.seconds.min(5.0))
    } else if options.overhead_only {
        overhead(options.overhead_rounds)
    } else if options.burst_sweep {
        burst_sweep(&options)
    } else {
        baseline(&options)
    }
}
