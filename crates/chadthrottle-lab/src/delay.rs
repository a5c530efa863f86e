//! Real round-trip delay without netem: a TAP device in each namespace and two threads
//! per direction that hold every frame for a fixed time before handing it over. The
//! TAPs use virtio-net headers with TSO, so 64 KB segments cross in one read and write:
//! a userspace hop carries several Gbit/s.

use crate::net;
use crate::netns::NetNs;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A delayed link between two namespaces; gone when dropped.
pub struct DelayLine {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    lost: Arc<AtomicU64>,
}

/// One end: the namespace, the TAP's name there and its addresses.
pub struct End<'a> {
    pub netns: &'a NetNs,
    pub name: &'a str,
    pub addresses: &'a [(IpAddr, u8)],
}

fn open_tap(name: &str) -> io::Result<File> {
    let file = File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    // SAFETY: ifreq is plain data; zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *slot = byte as libc::c_char;
    }
    request.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    // SAFETY: request is a valid ifreq for TUNSETIFF; the descriptor is open.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &raw mut request) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let offloads = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
    // SAFETY: TUNSETOFFLOAD takes its flags by value.
    if unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(offloads),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

fn readable(file: &File, timeout_ms: i32) -> bool {
    let mut poll = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll reads and writes one valid pollfd.
    unsafe { libc::poll(&mut poll, 1, timeout_ms) > 0 }
}

/// Frames from `from` reach `to` `delay` after they were read.
fn forward(
    from: Arc<File>,
    to: Arc<File>,
    delay: Duration,
    stop: &Arc<AtomicBool>,
    lost: &Arc<AtomicU64>,
) -> [JoinHandle<()>; 2] {
    let (queue, frames) = mpsc::channel::<(Instant, Vec<u8>)>();
    let reader_stop = Arc::clone(stop);
    let reader = std::thread::spawn(move || {
        let mut buffer = vec![0; 70_000];
        while !reader_stop.load(Ordering::Relaxed) {
            if !readable(&from, 50) {
                continue;
            }
            match (&*from).read(&mut buffer) {
                Ok(n) if n > 0 => {
                    if queue
                        .send((Instant::now() + delay, buffer[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
                _ => continue,
            }
        }
    });
    let writer_stop = Arc::clone(stop);
    let lost = Arc::clone(lost);
    let writer = std::thread::spawn(move || {
        while !writer_stop.load(Ordering::Relaxed) {
            let Ok((due, frame)) = frames.recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            // a frame the stack refuses is a lost frame, as on a real link; counted so
            // that the lab's own losses are never taken for the datapath's
            if (&*to).write(&frame).is_err() {
                lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    [reader, writer]
}

impl DelayLine {
    /// Links `a` and `b` with `one_way` delay in each direction (RTT = 2 × `one_way`).
    pub fn new(a: &End<'_>, b: &End<'_>, one_way: Duration) -> io::Result<DelayLine> {
        let open = |end: &End<'_>| -> io::Result<Arc<File>> {
            end.netns.run(|| {
                let tap = open_tap(end.name)?;
                net::configure(end.name, end.addresses)?;
                Ok(Arc::new(tap))
            })?
        };
        let (tap_a, tap_b) = (open(a)?, open(b)?);
        let stop = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        threads.extend(forward(
            Arc::clone(&tap_a),
            Arc::clone(&tap_b),
            one_way,
            &stop,
            &lost,
        ));
        threads.extend(forward(tap_b, tap_a, one_way, &stop, &lost));
        Ok(DelayLine {
            stop,
            threads,
            lost,
        })
    }

    /// Frames the delay line failed to hand over so far.
    pub fn lost_frames(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _finished = thread.join();
        }
    }
}
