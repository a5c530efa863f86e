//! Turns a source's successive [`Reading`]s into [`Snapshot`]s: rates over a sliding
//! window, the Internet/Local split, the last minute of history, and exited processes
//! kept for a while with their final totals.

use crate::locality::{Locality, locality};
use crate::meter::{History, HistoryPoint, RateMeter};
use crate::process::ProcessRef;
use crate::usage::{
    ConnectionReading, ConnectionUsage, Counters, InterfaceReading, InterfaceUsage, Layer,
    LimitRates, ProcessReading, ProcessUsage, Reading, Snapshot, Source, Split,
};
use std::collections::HashMap;

/// How long an exited process, or an idle connection, stays in snapshots.
pub const LINGER_NS: u64 = 60_000_000_000;

#[derive(Debug, Default)]
struct Pair {
    rx: RateMeter,
    tx: RateMeter,
}

impl Pair {
    fn record(&mut self, at_ns: u64, counters: &Counters) {
        self.rx.record(at_ns, counters.rx_bytes);
        self.tx.record(at_ns, counters.tx_bytes);
    }
}

#[derive(Debug)]
struct ProcessState {
    last: ProcessReading,
    meters: Pair,
    history: History,
    internet: Split,
    local: Split,
    internet_meters: Pair,
    local_meters: Pair,
}

#[derive(Debug, Default)]
struct InterfaceState {
    last: Option<InterfaceReading>,
    meters: Pair,
}

#[derive(Debug)]
struct ConnectionState {
    last: ConnectionReading,
    meters: Pair,
}

/// The monitor: one per source, fed every refresh.
#[derive(Debug)]
pub struct Monitor {
    source: Source,
    counted: Layer,
    note: Option<String>,
    interval_ms: u64,
    processes: HashMap<ProcessRef, ProcessState>,
    connections: HashMap<u64, ConnectionState>,
    interfaces: HashMap<String, InterfaceState>,
}

impl Monitor {
    pub fn new(source: Source, counted: Layer, note: Option<String>, interval_ms: u64) -> Self {
        Monitor {
            source,
            counted,
            note,
            interval_ms,
            processes: HashMap::new(),
            connections: HashMap::new(),
            interfaces: HashMap::new(),
        }
    }

    /// Takes in a reading (readings must come in time order).
    pub fn ingest(&mut self, reading: Reading) {
        let at = reading.at_ns;
        for process in reading.processes {
            let state = self
                .processes
                .entry(process.process)
                .or_insert_with(|| ProcessState {
                    last: process.clone(),
                    meters: Pair::default(),
                    history: History::default(),
                    internet: Split::default(),
                    local: Split::default(),
                    internet_meters: Pair::default(),
                    local_meters: Pair::default(),
                });
            state.meters.record(at, &process.counters);
            state.last = process;
            state.history.push(HistoryPoint {
                at_ns: at,
                rx_rate: state.meters.rx.rate(),
                tx_rate: state.meters.tx.rate(),
            });
        }
        for connection in reading.connections {
            let state = self
                .connections
                .entry(connection.id)
                .or_insert_with(|| ConnectionState {
                    last: ConnectionReading {
                        counters: Counters::default(),
                        ..connection.clone()
                    },
                    meters: Pair::default(),
                });
            // a new connection contributes all its bytes, a known one its growth
            let grown = Split {
                rx_rate: 0,
                tx_rate: 0,
                rx_bytes: connection
                    .counters
                    .rx_bytes
                    .saturating_sub(state.last.counters.rx_bytes),
                tx_bytes: connection
                    .counters
                    .tx_bytes
                    .saturating_sub(state.last.counters.tx_bytes),
            };
            state.meters.record(at, &connection.counters);
            if let Some(owner) = self.processes.get_mut(&connection.process) {
                let split = match locality(connection.remote.ip()) {
                    Locality::Internet => &mut owner.internet,
                    Locality::Local => &mut owner.local,
                };
                split.rx_bytes += grown.rx_bytes;
                split.tx_bytes += grown.tx_bytes;
            }
            state.last = connection;
        }
        for state in self.processes.values_mut() {
            let split = |split: &Split| Counters {
                rx_bytes: split.rx_bytes,
                tx_bytes: split.tx_bytes,
                ..Counters::default()
            };
            state.internet_meters.record(at, &split(&state.internet));
            state.local_meters.record(at, &split(&state.local));
            state.internet.rx_rate = state.internet_meters.rx.rate();
            state.internet.tx_rate = state.internet_meters.tx.rate();
            state.local.rx_rate = state.local_meters.rx.rate();
            state.local.tx_rate = state.local_meters.tx.rate();
        }
        for interface in reading.interfaces {
            let entry = self.interfaces.entry(interface.name.clone()).or_default();
            entry.meters.record(
                at,
                &Counters {
                    rx_bytes: interface.rx_bytes,
                    tx_bytes: interface.tx_bytes,
                    ..Counters::default()
                },
            );
            entry.last = Some(interface);
        }
        let linger_from = at.saturating_sub(LINGER_NS);
        self.processes
            .retain(|_, state| state.last.exited_at_ns.is_none_or(|t| t >= linger_from));
        self.connections
            .retain(|_, state| state.last.last_active_ns >= linger_from);
    }

    /// The current picture: processes with traffic, busiest first.
    pub fn snapshot(&self, limits: &HashMap<ProcessRef, LimitRates>) -> Snapshot {
        let mut processes: Vec<ProcessUsage> = self
            .processes
            .values()
            .filter(|state| {
                let c = &state.last.counters;
                c.rx_bytes + c.tx_bytes + c.rx_packets + c.tx_packets > 0
            })
            .map(|state| {
                let reading = &state.last;
                ProcessUsage {
                    pid: reading.process.pid,
                    start_time: reading.process.start_time,
                    name: reading.name.clone(),
                    cmdline: reading.cmdline.clone(),
                    rx_rate: state.meters.rx.rate(),
                    tx_rate: state.meters.tx.rate(),
                    rx_bytes: reading.counters.rx_bytes,
                    tx_bytes: reading.counters.tx_bytes,
                    rx_packets: reading.counters.rx_packets,
                    tx_packets: reading.counters.tx_packets,
                    limit: limits.get(&reading.process).copied(),
                    rule: None,
                    internet: state.internet,
                    local: state.local,
                    exited: reading.exited_at_ns.is_some(),
                }
            })
            .collect();
        processes.sort_by_key(|p| {
            (
                std::cmp::Reverse(p.rx_rate.saturating_add(p.tx_rate)),
                std::cmp::Reverse(p.rx_bytes.saturating_add(p.tx_bytes)),
                p.pid,
            )
        });
        let mut connections: Vec<ConnectionUsage> = self
            .connections
            .values()
            .map(|state| {
                let c = &state.last;
                ConnectionUsage {
                    pid: c.process.pid,
                    protocol: c.protocol,
                    local: c.local,
                    remote: c.remote,
                    state: c.state.clone(),
                    locality: locality(c.remote.ip()),
                    rx_rate: state.meters.rx.rate(),
                    tx_rate: state.meters.tx.rate(),
                    rx_bytes: c.counters.rx_bytes,
                    tx_bytes: c.counters.tx_bytes,
                }
            })
            .collect();
        connections.sort_by_key(|c| {
            (
                std::cmp::Reverse(c.rx_rate.saturating_add(c.tx_rate)),
                std::cmp::Reverse(c.rx_bytes.saturating_add(c.tx_bytes)),
                c.pid,
                c.local,
                c.remote,
            )
        });
        let mut interfaces: Vec<InterfaceUsage> = self
            .interfaces
            .values()
            .filter_map(|state| {
                let last = state.last.as_ref()?;
                Some(InterfaceUsage {
                    name: last.name.clone(),
                    rx_rate: state.meters.rx.rate(),
                    tx_rate: state.meters.tx.rate(),
                    rx_bytes: last.rx_bytes,
                    tx_bytes: last.tx_bytes,
                    addresses: last.addresses.clone(),
                })
            })
            .collect();
        interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        Snapshot {
            interval_ms: self.interval_ms,
            source: self.source,
            counted: self.counted,
            note: self.note.clone(),
            processes,
            interfaces,
            connections,
        }
    }

    /// The last minute of a process's rates, oldest first (for graphs).
    pub fn history(&self, process: &ProcessRef) -> Vec<HistoryPoint> {
        self.processes
            .get(process)
            .map(|state| state.history.points().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{InterfaceReading, Protocol};

    const SECOND: u64 = 1_000_000_000;

    fn process(pid: u32, rx: u64, tx: u64, exited_at_ns: Option<u64>) -> ProcessReading {
        ProcessReading {
            process: ProcessRef { pid, start_time: 7 },
            name: format!("p{pid}"),
            cmdline: format!("p{pid} --flag"),
            counters: Counters {
                rx_bytes: rx,
                tx_bytes: tx,
                rx_packets: rx / 1000,
                tx_packets: tx / 1000,
            },
            exited_at_ns,
        }
    }

    fn connection(id: u64, pid: u32, remote: &str, rx: u64, at: u64) -> ConnectionReading {
        ConnectionReading {
            id,
            process: ProcessRef { pid, start_time: 7 },
            protocol: Protocol::Tcp,
            local: "198.18.0.1:40000".parse().unwrap(),
            remote: remote.parse().unwrap(),
            state: "ESTABLISHED".into(),
            counters: Counters {
                rx_bytes: rx,
                ..Counters::default()
            },
            last_active_ns: at,
        }
    }

    fn reading(at_ns: u64, processes: Vec<ProcessReading>) -> Reading {
        Reading {
            at_ns,
            processes,
            connections: vec![],
            interfaces: vec![],
        }
    }

    fn monitor() -> Monitor {
        Monitor::new(Source::Ebpf, Layer::TransportPayload, None, 1000)
    }

    #[test]
    fn rates_totals_and_order() {
        let mut monitor = monitor();
        for second in 0..4 {
            monitor.ingest(reading(
                second * SECOND,
                vec![
                    process(10, second * 1_000, 0, None),
                    process(20, second * 5_000, second * 100, None),
                    process(30, 0, 0, None),
                ],
            ));
        }
        let snapshot = monitor.snapshot(&HashMap::new());
        let pids: Vec<u32> = snapshot.processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [20, 10], "busiest first, idle-forever hidden");
        let top = &snapshot.processes[0];
        assert_eq!((top.rx_rate, top.tx_rate), (5_000, 100));
        assert_eq!((top.rx_bytes, top.tx_bytes), (15_000, 300));
        assert_eq!(
            monitor
                .history(&ProcessRef {
                    pid: 20,
                    start_time: 7
                })
                .len(),
            4
        );
    }

    #[test]
    fn an_exited_process_keeps_its_totals_for_a_minute() {
        let mut monitor = monitor();
        monitor.ingest(reading(0, vec![process(10, 4_000, 0, None)]));
        monitor.ingest(reading(
            SECOND,
            vec![process(10, 9_000, 0, Some(SECOND / 2))],
        ));
        let snapshot = monitor.snapshot(&HashMap::new());
        assert_eq!(snapshot.processes[0].rx_bytes, 9_000);
        assert!(snapshot.processes[0].exited);
        monitor.ingest(reading(SECOND / 2 + LINGER_NS + 1, vec![]));
        assert!(monitor.snapshot(&HashMap::new()).processes.is_empty());
    }

    #[test]
    fn connections_split_internet_and_local_by_growth() {
        let mut monitor = monitor();
        let mut first = reading(0, vec![process(10, 3_000, 0, None)]);
        first.connections = vec![
            connection(1, 10, "8.8.8.8:443", 1_000, 0),
            connection(2, 10, "192.168.1.5:22", 2_000, 0),
        ];
        monitor.ingest(first);
        let mut second = reading(SECOND, vec![process(10, 7_000, 0, None)]);
        second.connections = vec![
            connection(1, 10, "8.8.8.8:443", 5_000, SECOND),
            connection(2, 10, "192.168.1.5:22", 2_000, SECOND),
        ];
        monitor.ingest(second);
        let snapshot = monitor.snapshot(&HashMap::new());
        let p = &snapshot.processes[0];
        assert_eq!(p.internet.rx_bytes, 5_000);
        assert_eq!(p.local.rx_bytes, 2_000);
        assert_eq!((p.internet.rx_rate, p.local.rx_rate), (4_000, 0));
        assert_eq!(snapshot.connections.len(), 2);
        assert_eq!(snapshot.connections[0].rx_rate, 4_000);
        assert_eq!(snapshot.connections[0].locality, Locality::Internet);
    }

    #[test]
    fn limits_and_interfaces_are_shown() {
        let mut monitor = monitor();
        for second in 0..3 {
            let mut r = reading(second * SECOND, vec![process(10, second, 0, None)]);
            r.interfaces = vec![InterfaceReading {
                name: "eth0".into(),
                rx_bytes: second * 2_000,
                tx_bytes: second * 1_000,
                addresses: vec![],
            }];
            monitor.ingest(r);
        }
        let limits = HashMap::from([(
            ProcessRef {
                pid: 10,
                start_time: 7,
            },
            LimitRates {
                up: Some(1024),
                down: None,
            },
        )]);
        let snapshot = monitor.snapshot(&limits);
        assert_eq!(snapshot.processes[0].limit.unwrap().up, Some(1024));
        assert_eq!(snapshot.interfaces[0].rx_rate, 2_000);
        assert_eq!(snapshot.interfaces[0].tx_rate, 1_000);
    }

    #[test]
    fn json_contract_field_names() {
        let mut monitor = monitor();
        monitor.ingest(reading(0, vec![process(10, 1, 1, None)]));
        let json = serde_json::to_value(monitor.snapshot(&HashMap::new())).unwrap();
        for key in ["interval_ms", "processes", "interfaces"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        let process = &json["processes"][0];
        for key in [
            "pid", "name", "cmdline", "rx_rate", "tx_rate", "rx_bytes", "tx_bytes", "limit", "rule",
        ] {
            assert!(process.get(key).is_some(), "{key}");
        }
        assert!(process["limit"].is_null());
        assert!(process["rx_rate"].is_u64());
        let limits = LimitRates {
            up: Some(5),
            down: None,
        };
        let limit = serde_json::to_value(limits).unwrap();
        assert_eq!(limit, serde_json::json!({"up": 5, "down": null}));
        let interface = serde_json::to_value(InterfaceUsage {
            name: "lo".into(),
            rx_rate: 1,
            tx_rate: 2,
            rx_bytes: 3,
            tx_bytes: 4,
            addresses: vec!["127.0.0.1".parse().unwrap()],
        })
        .unwrap();
        for key in ["name", "rx_rate", "tx_rate"] {
            assert!(interface.get(key).is_some(), "{key}");
        }
    }
}
