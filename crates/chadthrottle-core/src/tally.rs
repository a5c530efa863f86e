//! The usage history's arithmetic: successive readings of per-process counters turned
//! into per-process increments, so that the daemon writes each byte once.
//!
//! The datapath's counters are totals per process incarnation ([`ProcessRef`]: PID and
//! start time) since accounting started. The daemon keeps, beside what it wrote, the
//! counters it last accounted for each process (a [`Checkpoint`]) and the source's
//! *epoch* — what identifies one run of the counters (a boot and one install of the
//! accounting map; a `reset` or a reboot starts another). An increment is the growth of a
//! counter since the checkpoint, and the checkpoint is written in the same transaction as
//! the increments it produced. Hence:
//!
//! | event | counted twice | lost |
//! |---|---|---|
//! | daemon restart, `kill -9` (before or after a commit) | never: a commit holds both the increments and the counters they were taken up to | nothing of a process the source still holds; a process that exited *and* was evicted from the source's table before the next reading loses what it moved since the last commit — at most one interval when the daemon is running |
//! | process exit | never | nothing: the source keeps an exited process's final counters (until evicted) |
//! | PID reuse | never: another start time is another process, counted from zero | nothing |
//! | datapath `reset`, reboot | never: a new epoch discards the checkpoint and the counters restart at zero | what moved between the last reading and the reset: at most one interval |
//! | a process's entry evicted and created again (counters lower than the checkpoint) | never: the new counters count whole | what moved between the last reading and the eviction: at most one interval |
//! | a failed write (full disk, read-only database) | never: the caller keeps the old tally and takes the next increment from it | nothing (the next write carries it) |
//!
//! On a new epoch — the first reading of a new database too — a process's counters count
//! whole: they are what it moved since the counters started.
//!
//! The Internet/Local split: the process totals are exact; which part went to local
//! peers is what that process's *connections* to local addresses grew by (a connection
//! not seen before counts whole, as in the monitor), capped at the process's own growth,
//! and the rest is Internet (traffic on sockets the connection table no longer holds has
//! no address to tell).

use crate::locality::{Locality, locality};
use crate::process::ProcessRef;
use crate::usage::{Counters, Reading};
use serde::Serialize;
use std::collections::HashMap;

/// Download and upload bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bytes {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl Bytes {
    pub fn add(&mut self, other: Bytes) {
        self.rx_bytes = self.rx_bytes.saturating_add(other.rx_bytes);
        self.tx_bytes = self.tx_bytes.saturating_add(other.tx_bytes);
    }

    pub fn total(self) -> u64 {
        self.rx_bytes.saturating_add(self.tx_bytes)
    }
}

/// What one process moved in one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Increment {
    pub process: ProcessRef,
    pub internet: Bytes,
    pub local: Bytes,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

impl Increment {
    /// Internet and local together.
    pub fn bytes(&self) -> Bytes {
        let mut both = self.internet;
        both.add(self.local);
        both
    }
}

/// The counters accounted so far, in one epoch: what the daemon stores with each write
/// and resumes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub epoch: String,
    pub counters: HashMap<ProcessRef, Counters>,
}

/// Readings to increments (see the module's table for what it guarantees).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    checkpoint: Option<Checkpoint>,
    /// Connections' counters at the last reading, by id; held in memory only (a restart
    /// counts an open connection whole once, within the process's growth).
    connections: HashMap<u64, Counters>,
}

impl Tally {
    /// Resumes from what the database holds (`None` for a new one).
    pub fn resume(checkpoint: Option<Checkpoint>) -> Tally {
        Tally {
            checkpoint,
            connections: HashMap::new(),
        }
    }

    /// The counters accounted up to the last [`Tally::take`], to store with its increments.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.checkpoint.as_ref()
    }

    /// What every process in `reading` moved since the last reading (or since the
    /// counters started, in a new epoch); processes that moved nothing are left out.
    /// A process the reading no longer lists leaves the checkpoint: the source forgot it.
    pub fn take(&mut self, epoch: &str, reading: &Reading) -> Vec<Increment> {
        let same_epoch = self
            .checkpoint
            .as_ref()
            .is_some_and(|checkpoint| checkpoint.epoch == epoch);
        if !same_epoch {
            self.connections.clear();
        }
        let before = match self.checkpoint.take() {
            Some(checkpoint) if same_epoch => checkpoint.counters,
            _ => HashMap::new(),
        };
        let local = self.local_growth(reading);
        let mut increments = Vec::new();
        let mut counters = HashMap::with_capacity(reading.processes.len());
        for process in &reading.processes {
            let now = process.counters;
            let grown = match before.get(&process.process) {
                Some(then) if !went_back(then, &now) => Counters {
                    rx_bytes: now.rx_bytes - then.rx_bytes,
                    tx_bytes: now.tx_bytes - then.tx_bytes,
                    rx_packets: now.rx_packets - then.rx_packets,
                    tx_packets: now.tx_packets - then.tx_packets,
                },
                // unknown, or the entry was created again: all of it is new
                _ => now,
            };
            counters.insert(process.process, now);
            if grown == Counters::default() {
                continue;
            }
            let local_seen = local.get(&process.process).copied().unwrap_or_default();
            let local = Bytes {
                rx_bytes: local_seen.rx_bytes.min(grown.rx_bytes),
                tx_bytes: local_seen.tx_bytes.min(grown.tx_bytes),
            };
            increments.push(Increment {
                process: process.process,
                internet: Bytes {
                    rx_bytes: grown.rx_bytes - local.rx_bytes,
                    tx_bytes: grown.tx_bytes - local.tx_bytes,
                },
                local,
                rx_packets: grown.rx_packets,
                tx_packets: grown.tx_packets,
            });
        }
        self.checkpoint = Some(Checkpoint {
            epoch: epoch.to_owned(),
            counters,
        });
        increments
    }

    /// What each process's connections to local peers grew by since the last reading;
    /// remembers the connections' counters for the next.
    fn local_growth(&mut self, reading: &Reading) -> HashMap<ProcessRef, Bytes> {
        let mut local: HashMap<ProcessRef, Bytes> = HashMap::new();
        let mut seen = HashMap::with_capacity(reading.connections.len());
        for connection in &reading.connections {
            let now = connection.counters;
            seen.insert(connection.id, now);
            if locality(connection.remote.ip()) != Locality::Local {
                continue;
            }
            let grown = match self.connections.get(&connection.id) {
                Some(then) if !went_back(then, &now) => Bytes {
                    rx_bytes: now.rx_bytes - then.rx_bytes,
                    tx_bytes: now.tx_bytes - then.tx_bytes,
                },
                _ => Bytes {
                    rx_bytes: now.rx_bytes,
                    tx_bytes: now.tx_bytes,
                },
            };
            local.entry(connection.process).or_default().add(grown);
        }
        self.connections = seen;
        local
    }
}

/// The boot an epoch (`BOOT/RUN`) belongs to: a process identity (PID and start time,
/// clock ticks since boot) names one process within a boot, whatever the runs of the
/// counters.
pub fn boot_of(epoch: &str) -> &str {
    epoch.rsplit_once('/').map_or(epoch, |(boot, _)| boot)
}

/// Whether any counter is lower than before: the entry was created anew.
fn went_back(then: &Counters, now: &Counters) -> bool {
    now.rx_bytes < then.rx_bytes
        || now.tx_bytes < then.tx_bytes
        || now.rx_packets < then.rx_packets
        || now.tx_packets < then.tx_packets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{ConnectionReading, ProcessReading, Protocol};

    fn process(pid: u32, start_time: u64, rx: u64, tx: u64) -> ProcessReading {
        ProcessReading {
            process: ProcessRef { pid, start_time },
            name: format!("p{pid}"),
            cmdline: String::new(),
            counters: Counters {
                rx_bytes: rx,
                tx_bytes: tx,
                rx_packets: rx / 100,
                tx_packets: tx / 100,
            },
            exited_at_ns: None,
        }
    }

    fn connection(id: u64, pid: u32, remote: &str, rx: u64, tx: u64) -> ConnectionReading {
        ConnectionReading {
            id,
            process: ProcessRef { pid, start_time: 1 },
            protocol: Protocol::Tcp,
            local: "10.0.0.1:40000".parse().expect("address"),
            remote: remote.parse().expect("address"),
            state: "ESTABLISHED".to_owned(),
            counters: Counters {
                rx_bytes: rx,
                tx_bytes: tx,
                ..Counters::default()
            },
            last_active_ns: 0,
        }
    }

    fn reading(processes: Vec<ProcessReading>) -> Reading {
        Reading {
            at_ns: 0,
            processes,
            connections: Vec::new(),
            interfaces: Vec::new(),
        }
    }

    /// Total bytes of `pid` in `increments`.
    fn moved(increments: &[Increment], pid: u32) -> u64 {
        increments
            .iter()
            .filter(|increment| increment.process.pid == pid)
            .map(|increment| increment.bytes().total())
            .sum()
    }

    #[test]
    fn the_boot_is_the_epoch_before_its_last_slash() {
        assert_eq!(boot_of("4f1c-9e/123"), "4f1c-9e");
        assert_eq!(boot_of("fake/2"), "fake");
        assert_eq!(boot_of("plain"), "plain");
    }

    #[test]
    fn growth_is_counted_once_and_idle_processes_are_left_out() {
        let mut tally = Tally::default();
        let first = tally.take("e", &reading(vec![process(1, 1, 1000, 200)]));
        assert_eq!(moved(&first, 1), 1200, "a new epoch counts whole");
        let second = tally.take("e", &reading(vec![process(1, 1, 1500, 200)]));
        assert_eq!(moved(&second, 1), 500);
        assert_eq!(second[0].rx_packets, 5);
        let third = tally.take("e", &reading(vec![process(1, 1, 1500, 200)]));
        assert!(third.is_empty(), "{third:?}");
    }

    #[test]
    fn a_restart_resumes_from_the_stored_checkpoint_without_counting_twice() {
        let mut running = Tally::default();
        running.take("e", &reading(vec![process(1, 1, 1000, 0)]));
        let stored = running.checkpoint().cloned();
        // the daemon dies; the process moves 700 bytes before the new one reads
        let mut restarted = Tally::resume(stored);
        let after = restarted.take("e", &reading(vec![process(1, 1, 1700, 0)]));
        assert_eq!(moved(&after, 1), 700);
    }

    #[test]
    fn a_kill_before_the_commit_leaves_the_old_checkpoint_and_loses_nothing() {
        let mut tally = Tally::default();
        tally.take("e", &reading(vec![process(1, 1, 1000, 0)]));
        let committed = tally.checkpoint().cloned();
        // taken but never written: killed before the commit
        tally.take("e", &reading(vec![process(1, 1, 1400, 0)]));
        let mut restarted = Tally::resume(committed);
        let after = restarted.take("e", &reading(vec![process(1, 1, 1900, 0)]));
        assert_eq!(
            moved(&after, 1),
            900,
            "the uncommitted 400 and the next 500"
        );
    }

    #[test]
    fn a_reused_pid_is_another_process_counted_from_zero() {
        let mut tally = Tally::default();
        tally.take("e", &reading(vec![process(7, 100, 5000, 0)]));
        // pid 7 exited and was forgotten; a new process got the PID with fewer bytes
        let next = tally.take("e", &reading(vec![process(7, 200, 300, 0)]));
        assert_eq!(moved(&next, 7), 300);
        assert_eq!(next[0].process.start_time, 200);
    }

    #[test]
    fn an_exited_process_final_counters_are_counted_and_it_then_leaves() {
        let mut tally = Tally::default();
        tally.take(
            "e",
            &reading(vec![process(1, 1, 100, 0), process(2, 1, 100, 0)]),
        );
        let mut exited = process(2, 1, 900, 0);
        exited.exited_at_ns = Some(5);
        let next = tally.take("e", &reading(vec![process(1, 1, 100, 0), exited]));
        assert_eq!(moved(&next, 2), 800);
        tally.take("e", &reading(vec![process(1, 1, 100, 0)]));
        let kept = tally.checkpoint().expect("checkpoint");
        assert_eq!(kept.counters.len(), 1, "forgotten by the source: {kept:?}");
    }

    #[test]
    fn a_datapath_reset_starts_a_new_epoch_counted_from_zero() {
        let mut tally = Tally::default();
        tally.take("boot/map1", &reading(vec![process(1, 1, 5000, 0)]));
        // reset and reinstall; the process has moved 6000 bytes since: more than before,
        // so only the epoch tells the counters restarted
        let next = tally.take("boot/map2", &reading(vec![process(1, 1, 6000, 0)]));
        assert_eq!(moved(&next, 1), 6000);
    }

    #[test]
    fn counters_lower_than_the_checkpoint_count_whole() {
        let mut tally = Tally::default();
        tally.take("e", &reading(vec![process(1, 1, 5000, 50)]));
        let next = tally.take("e", &reading(vec![process(1, 1, 300, 60)]));
        assert_eq!(moved(&next, 1), 360);
    }

    #[test]
    fn the_local_share_is_the_local_connections_growth_capped_by_the_process() {
        let mut tally = Tally::default();
        let mut first = reading(vec![process(1, 1, 1000, 100)]);
        first.connections = vec![
            connection(10, 1, "192.168.1.5:22", 300, 40),
            connection(11, 1, "8.8.8.8:443", 700, 60),
        ];
        let increments = tally.take("e", &first);
        assert_eq!(increments[0].local.rx_bytes, 300);
        assert_eq!(increments[0].local.tx_bytes, 40);
        assert_eq!(increments[0].internet.rx_bytes, 700);
        assert_eq!(increments[0].internet.tx_bytes, 60);
        let mut second = reading(vec![process(1, 1, 1100, 100)]);
        // the local connection says it grew by 500: more than the process, so capped
        second.connections = vec![connection(10, 1, "192.168.1.5:22", 800, 40)];
        let increments = tally.take("e", &second);
        assert_eq!(increments[0].local.rx_bytes, 100);
        assert_eq!(increments[0].internet.rx_bytes, 0);
        assert_eq!(increments[0].bytes().total(), 100, "totals stay exact");
    }
}
