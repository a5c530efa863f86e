//! The traffic generator, as a process: one lab endpoint that listens or connects (TCP
//! or UDP, IPv4 or IPv6), receives on every connection in the background (counting
//! goodput in 100 ms bins of CLOCK_MONOTONIC), and sends when told to.
//!
//! It is this same executable started with [`ENDPOINT_ARG`]; every binary that uses the
//! lab calls [`run_if_endpoint`] first thing in `main`. It obeys one command per line on
//! stdin and answers each with one JSON line on stdout (`protocol` has the types):
//!
//! ```text
//! send SECONDS MAX_BYTES   send as fast as allowed on the newest connection
//! send_all SECONDS MAX_BYTES CONNECTIONS
//!                          wait for CONNECTIONS connections, then send on all of them at
//!                          once (a thread each, MAX_BYTES shared equally)
//! bins                     received bytes per bin so far
//! udp_queues               what its UDP sockets' receive queues hold, and what the kernel
//!                          dropped at them so far
//! open                     (connecting side) open one more connection
//! pace BYTES_PER_SECOND    cap the pacing rate of every TCP connection (the application's
//!                          own SO_MAX_PACING_RATE): a flow that asks for a set rate
//! probe SECONDS            (connecting side) latency probe against an `echo` endpoint, on
//!                          a connection of its own (see `latency`)
//! thread                   run a thread that exits at once (the exit hook must ignore it)
//! quit                     exit
//! ```
//!
//! The `echo` role listens like `listen` but sends back whatever each connection sends:
//! the latency probe's server.

use crate::protocol::{
    ENDPOINT_ARG, EndpointArgs, Proto, Ready, Reply, Role, SendReport, UDP_PAYLOAD, UdpQueues,
};
use crate::stats::{BIN_NS, Bins};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

const HELLO: &[u8] = b"chadthrottle-lab-hello";
/// Receive buffer of every UDP socket (the kernel doubles it for its bookkeeping): about
/// 2 s of datagrams at 4 MiB/s. The default (208 KiB) holds 30 ms, and a receiver that a
/// busy core keeps off the CPU longer than that loses datagrams the measurement needs.
const UDP_RECEIVE_BUFFER: libc::c_int = 8 << 20;

/// If this process was started as a lab endpoint, runs it and exits; otherwise returns.
pub fn run_if_endpoint() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(ENDPOINT_ARG) {
        let code = match run(&args[2..]) {
            Ok(()) => 0,
            Err(error) => {
                eprintln!("lab endpoint {}: {error:#}", std::process::id());
                1
            }
        };
        std::process::exit(code);
    }
}

/// A connection the endpoint can send on.
enum Conn {
    Tcp(TcpStream),
    Udp {
        socket: Arc<UdpSocket>,
        peer: SocketAddr,
    },
}

#[derive(Default)]
struct Shared {
    bins: Mutex<BTreeMap<u64, u64>>,
    conns: Mutex<Vec<Conn>>,
    /// Every UDP socket the endpoint receives on, for their drop counters.
    udp_sockets: Mutex<Vec<Arc<UdpSocket>>>,
}

impl Shared {
    fn count(&self, bytes: usize) {
        let bin = crate::now_ns() / BIN_NS;
        let mut bins = self.bins.lock().unwrap_or_else(PoisonError::into_inner);
        *bins.entry(bin).or_default() += bytes as u64;
    }

    fn snapshot(&self) -> Bins {
        let bins = self.bins.lock().unwrap_or_else(PoisonError::into_inner);
        let (Some((&first, _)), Some((&last, _))) = (bins.first_key_value(), bins.last_key_value())
        else {
            return Bins::default();
        };
        Bins {
            first,
            bytes: (first..=last)
                .map(|bin| bins.get(&bin).copied().unwrap_or(0))
                .collect(),
        }
    }

    fn receive_udp_on(&self, socket: &Arc<UdpSocket>) {
        let mut sockets = self
            .udp_sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sockets.push(Arc::clone(socket));
    }

    /// The receive queues of every UDP socket the endpoint receives on, summed.
    fn udp_queues(&self) -> anyhow::Result<UdpQueues> {
        let sockets = self
            .udp_sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut sum = UdpQueues::default();
        for socket in sockets.iter() {
            let queue = receive_queue(socket)?;
            sum.dropped += queue.dropped;
            sum.queued += queue.queued;
        }
        Ok(sum)
    }

    fn add(&self, conn: Conn) -> usize {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        conns.push(conn);
        conns.len()
    }
}

fn set_cc(stream: &impl AsRawFd, cc: Option<&str>) -> std::io::Result<()> {
    let Some(cc) = cc else { return Ok(()) };
    // SAFETY: the name buffer is valid for its length; the descriptor is open.
    let status = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            cc.as_ptr().cast(),
            cc.len() as libc::socklen_t,
        )
    };
    if status != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the `SOL_SOCKET` option `name` of `socket` to `value` (plain data).
fn set_socket_option<T: Copy>(
    socket: &impl AsRawFd,
    name: libc::c_int,
    value: T,
) -> std::io::Result<()> {
    // SAFETY: value is a live T and the length given is its size; the descriptor is open.
    let status = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if status != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Gives `socket` a receive buffer of [`UDP_RECEIVE_BUFFER`], above the system's maximum
/// (`SO_RCVBUFFORCE`: the lab runs as root).
fn enlarge_receive_buffer(socket: &UdpSocket) -> std::io::Result<()> {
    set_socket_option(socket, libc::SO_RCVBUFFORCE, UDP_RECEIVE_BUFFER)
}

/// What the kernel says of `socket`'s receive queue (`SO_MEMINFO`): memory still queued
/// for the application to read, and packets dropped so far (`SK_MEMINFO_DROPS`, the
/// counter `SO_RXQ_OVFL` and /proc/net/udp report): those that found the queue full, and
/// also those a cgroup ingress program (the policer) refused.
fn receive_queue(socket: &impl AsRawFd) -> anyhow::Result<UdpQueues> {
    let mut meminfo = [0u32; libc::SK_MEMINFO_DROPS as usize + 1];
    let mut len = std::mem::size_of_val(&meminfo) as libc::socklen_t;
    // SAFETY: meminfo and len are valid for writes of the given size; the kernel writes
    // at most len bytes.
    let status = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            meminfo.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if status != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    anyhow::ensure!(
        len as usize == std::mem::size_of_val(&meminfo),
        "SO_MEMINFO returned {len} bytes"
    );
    Ok(UdpQueues {
        dropped: u64::from(meminfo[libc::SK_MEMINFO_DROPS as usize]),
        queued: u64::from(meminfo[libc::SK_MEMINFO_RMEM_ALLOC as usize]),
    })
}

/// Caps the pacing rate of every TCP connection at `rate` bytes per second; returns how
/// many connections there are.
fn pace(shared: &Shared, rate: u64) -> anyhow::Result<usize> {
    let conns = shared.conns.lock().unwrap_or_else(PoisonError::into_inner);
    for conn in conns.iter() {
        let Conn::Tcp(stream) = conn else {
            anyhow::bail!("only TCP connections can be paced");
        };
        set_socket_option(stream, libc::SO_MAX_PACING_RATE, rate)?;
    }
    Ok(conns.len())
}

/// Retransmitted segments of `stream` so far (`tcpi_total_retrans`).
fn retransmits(stream: &TcpStream) -> u64 {
    // SAFETY: tcp_info is plain data; zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and len are valid for writes of the given size.
    let status = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    if status == 0 {
        u64::from(info.tcpi_total_retrans)
    } else {
        0
    }
}

fn receive_tcp(shared: Arc<Shared>, mut stream: TcpStream) {
    let mut buffer = vec![0; 256 * 1024];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        shared.count(n);
    }
}

fn receive_udp(shared: Arc<Shared>, socket: Arc<UdpSocket>, listening: bool) {
    let mut buffer = vec![0; 65_536];
    while let Ok((n, peer)) = socket.recv_from(&mut buffer) {
        if buffer[..n] == *HELLO {
            if listening {
                let _lost_is_retried = socket.send_to(HELLO, peer);
                shared.add(Conn::Udp {
                    socket: Arc::clone(&socket),
                    peer,
                });
            }
            continue;
        }
        shared.count(n);
    }
}

fn connect(args: &EndpointArgs, shared: &Arc<Shared>) -> anyhow::Result<usize> {
    match args.proto {
        Proto::Tcp => {
            let stream = connect_tcp(args)?;
            stream.set_nodelay(true)?;
            let reader = stream.try_clone()?;
            let shared_reader = Arc::clone(shared);
            std::thread::spawn(move || receive_tcp(shared_reader, reader));
            Ok(shared.add(Conn::Tcp(stream)))
        }
        Proto::Udp => {
            let bind: SocketAddr = if args.addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            }
            .parse()?;
            let socket = UdpSocket::bind(bind)?;
            enlarge_receive_buffer(&socket)?;
            socket.connect(args.addr)?;
            socket.set_read_timeout(Some(Duration::from_millis(200)))?;
            let mut buffer = [0; 64];
            let mut acknowledged = false;
            for _attempt in 0..25 {
                socket.send(HELLO)?;
                if matches!(socket.recv(&mut buffer), Ok(n) if buffer[..n] == *HELLO) {
                    acknowledged = true;
                    break;
                }
            }
            anyhow::ensure!(acknowledged, "no answer from {} over UDP", args.addr);
            socket.set_read_timeout(None)?;
            let socket = Arc::new(socket);
            shared.receive_udp_on(&socket);
            let shared_reader = Arc::clone(shared);
            let reader = Arc::clone(&socket);
            std::thread::spawn(move || receive_udp(shared_reader, reader, false));
            Ok(shared.add(Conn::Udp {
                socket,
                peer: args.addr,
            }))
        }
    }
}

/// Connects with the congestion control set before the handshake.
fn connect_tcp(args: &EndpointArgs) -> anyhow::Result<TcpStream> {
    let domain = if args.addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket() has no memory-safety preconditions.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: fd is a fresh socket owned by nobody else.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    set_cc(&owned, args.cc.as_deref())?;
    let stream = TcpStream::from(owned);
    let (storage, len) = sockaddr(args.addr);
    // SAFETY: storage holds a valid sockaddr of length len.
    if unsafe { libc::connect(stream.as_raw_fd(), (&raw const storage).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(stream)
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn listen(args: &EndpointArgs, shared: &Arc<Shared>) -> anyhow::Result<SocketAddr> {
    match args.proto {
        Proto::Tcp => {
            let listener = TcpListener::bind(args.addr)?;
            set_cc(&listener, args.cc.as_deref())?;
            let local = listener.local_addr()?;
            let shared = Arc::clone(shared);
            let cc = args.cc.clone();
            let echo = args.role == Role::Echo;
            std::thread::spawn(move || {
                for stream in listener.incoming().map_while(Result::ok) {
                    let _namespace_default = set_cc(&stream, cc.as_deref());
                    let _best_effort = stream.set_nodelay(true);
                    if echo {
                        std::thread::spawn(move || crate::latency::echo(stream));
                    } else if let Ok(reader) = stream.try_clone() {
                        let shared_reader = Arc::clone(&shared);
                        std::thread::spawn(move || receive_tcp(shared_reader, reader));
                        shared.add(Conn::Tcp(stream));
                    }
                }
            });
            Ok(local)
        }
        Proto::Udp => {
            anyhow::ensure!(args.role != Role::Echo, "the echo role is TCP only");
            let socket = UdpSocket::bind(args.addr)?;
            enlarge_receive_buffer(&socket)?;
            let socket = Arc::new(socket);
            shared.receive_udp_on(&socket);
            let local = socket.local_addr()?;
            let shared = Arc::clone(shared);
            std::thread::spawn(move || receive_udp(shared, socket, true));
            Ok(local)
        }
    }
}

/// Waits (at most 5 s) until `count` connections have been accepted or opened.
fn wait_for_connections(shared: &Shared, count: usize) -> anyhow::Result<()> {
    for _ in 0..500 {
        if shared
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
            >= count.max(1)
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    anyhow::bail!("fewer than {} connections within 5 s", count.max(1))
}

/// Sends on `conn` until `end_by` or `max_bytes`; the report's times are the caller's.
fn send_on(conn: &Conn, end_by: u64, max_bytes: u64) -> anyhow::Result<SendReport> {
    let mut report = SendReport::default();
    match conn {
        Conn::Tcp(stream) => {
            let retransmits_before = retransmits(stream);
            let buffer = vec![0x5a; 256 * 1024];
            // wake up regularly at low rates to honour the deadline
            stream.set_write_timeout(Some(Duration::from_millis(50)))?;
            let mut writer = stream;
            while crate::now_ns() < end_by && report.bytes < max_bytes {
                let chunk = buffer
                    .len()
                    .min(usize::try_from(max_bytes - report.bytes).unwrap_or(usize::MAX));
                match writer.write(&buffer[..chunk]) {
                    Ok(n) => report.bytes += n as u64,
                    Err(error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => {
                        report.errors += 1;
                        break;
                    }
                }
            }
            report.retransmits = retransmits(stream) - retransmits_before;
        }
        Conn::Udp { socket, peer } => {
            let datagram = [0x5a; UDP_PAYLOAD];
            while crate::now_ns() < end_by && report.bytes < max_bytes {
                match socket.send_to(&datagram, peer) {
                    Ok(n) => report.bytes += n as u64,
                    Err(_) => report.errors += 1,
                }
            }
        }
    }
    Ok(report)
}

/// Sends for `seconds` on the newest connection, or on all of them at once.
fn send(
    shared: &Shared,
    seconds: f64,
    max_bytes: u64,
    all: Option<usize>,
) -> anyhow::Result<SendReport> {
    // a listening endpoint may be told to send before its accept thread saw the peer
    wait_for_connections(shared, all.unwrap_or(1))?;
    let conns = shared.conns.lock().unwrap_or_else(PoisonError::into_inner);
    let start_ns = crate::now_ns();
    let end_by = start_ns + (seconds * 1e9) as u64;
    let mut report = match all {
        None => {
            let conn = conns
                .last()
                .ok_or_else(|| anyhow::anyhow!("no connection"))?;
            send_on(conn, end_by, max_bytes)?
        }
        Some(_) => {
            let share = max_bytes / conns.len().max(1) as u64;
            let parts: Vec<anyhow::Result<SendReport>> = std::thread::scope(|scope| {
                let senders: Vec<_> = conns
                    .iter()
                    .map(|conn| scope.spawn(move || send_on(conn, end_by, share)))
                    .collect();
                senders
                    .into_iter()
                    .map(|sender| {
                        sender
                            .join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("a sender thread panicked")))
                    })
                    .collect()
            });
            let mut sum = SendReport::default();
            for part in parts {
                let part = part?;
                sum.bytes += part.bytes;
                sum.errors += part.errors;
                sum.retransmits += part.retransmits;
            }
            sum
        }
    };
    report.start_ns = start_ns;
    report.end_ns = crate::now_ns();
    Ok(report)
}

/// Opens and closes `count` TCP connections to the peer, one at a time, each carrying
/// one byte; returns how many connected.
fn churn(args: &EndpointArgs, count: u64) -> anyhow::Result<u64> {
    let mut connected = 0;
    for _ in 0..count {
        if let Ok(mut stream) = TcpStream::connect_timeout(&args.addr, Duration::from_secs(5)) {
            stream.write_all(b"x")?;
            connected += 1;
        }
    }
    Ok(connected)
}

fn reply(reply: &Reply) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, reply)?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(())
}

/// Renames the process (`PR_SET_NAME` on the main thread, which reads the commands: the
/// thread group leader's `comm` is the process's name); returns the name as the kernel
/// keeps it.
fn rename(name: &str) -> anyhow::Result<String> {
    let c_name = std::ffi::CString::new(name)?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of which it keeps 15 bytes.
    if unsafe { libc::prctl(libc::PR_SET_NAME, c_name.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(std::fs::read_to_string("/proc/self/comm")?
        .trim_end()
        .to_owned())
}

/// Becomes user `uid` (real, effective and saved; glibc applies it to every thread);
/// returns the real uid as the kernel has it now.
fn become_user(uid: u32) -> anyhow::Result<u32> {
    // SAFETY: setresuid takes three ids and has no memory-safety preconditions.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: getuid has no preconditions.
    Ok(unsafe { libc::getuid() })
}

fn run(raw_args: &[String]) -> anyhow::Result<()> {
    let args = EndpointArgs::parse(raw_args)?;
    let shared = Arc::new(Shared::default());
    let connecting = args.role == Role::Connect;
    let local = if connecting {
        connect(&args, &shared)?;
        args.addr
    } else {
        listen(&args, &shared)?
    };
    reply(&Reply::Ready(Ready {
        pid: std::process::id(),
        addr: local,
    }))?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["send", seconds, max_bytes] => reply(&Reply::Sent(send(
                &shared,
                seconds.parse()?,
                max_bytes.parse()?,
                None,
            )?))?,
            ["send_all", seconds, max_bytes, connections] => reply(&Reply::Sent(send(
                &shared,
                seconds.parse()?,
                max_bytes.parse()?,
                Some(connections.parse()?),
            )?))?,
            ["bins"] => reply(&Reply::Bins(shared.snapshot()))?,
            ["udp_queues"] => reply(&Reply::UdpQueues(shared.udp_queues()?))?,
            ["open"] if connecting => reply(&Reply::Opened(connect(&args, &shared)?))?,
            ["probe", seconds] if connecting => reply(&Reply::Probed(crate::latency::exchange(
                args.addr,
                seconds.parse()?,
            )))?,
            ["churn", count] if connecting => {
                reply(&Reply::Churned(churn(&args, count.parse()?)?))?;
            }
            ["pace", rate] => reply(&Reply::Paced(pace(&shared, rate.parse()?)?))?,
            ["thread"] => {
                std::thread::spawn(|| {})
                    .join()
                    .map_err(|_| anyhow::anyhow!("thread panicked"))?;
                reply(&Reply::ThreadDone)?;
            }
            ["rename", name] => reply(&Reply::Renamed(rename(name)?))?,
            ["setuid", uid] => reply(&Reply::UidSet(become_user(uid.parse()?)?))?,
            ["quit"] => break,
            _ => anyhow::bail!("unknown command {line:?}"),
        }
    }
    Ok(())
}
