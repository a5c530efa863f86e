//! The metrics endpoint the daemon serves: `GET /metrics` over HTTP (tiny_http) on a
//! thread of its own, answering from what the daemon last handed to its [`MetricsFeed`].
//!
//! What is exported, and how counters stay monotonic under the cap on labels, is the
//! core's (`metrics`, `metrics_text`); this module only holds the latest figures between
//! samples and answers HTTP.

use anyhow::anyhow;
use chadthrottle_core::application::ApplicationSnapshot;
use chadthrottle_core::metrics::{DaemonHealth, MetricsState};
use chadthrottle_core::metrics_text;
use chadthrottle_core::status::StatusReport;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;
use tiny_http::{Header, Method, Response, Server};

/// Where the endpoint listens unless configured otherwise (`[metrics] listen`): loopback
/// only, as the figures name every program on the machine.
use chadthrottle_core::daemon_config::DEFAULT_LISTEN;

/// The daemon's side of the endpoint: it records each sample here, the server thread
/// reads from it at each scrape. Cloning shares it.
#[derive(Debug, Clone)]
pub struct MetricsFeed(Arc<Mutex<Fed>>);

#[derive(Debug)]
struct Fed {
    state: MetricsState,
    samples_written: u64,
    database_bytes: u64,
    last_sample: Option<Instant>,
}

impl MetricsFeed {
    /// A feed whose scrapes give `top` applications their own labels (the rest are
    /// summed as `app="other"`; `chadthrottle_core::metrics::DEFAULT_TOP_APPLICATIONS`).
    pub fn new(top: usize) -> MetricsFeed {
        MetricsFeed(Arc::new(Mutex::new(Fed {
            state: MetricsState::new(top),
            samples_written: 0,
            database_bytes: 0,
            last_sample: None,
        })))
    }

    /// Takes in one sample, right after the daemon has read it: the usage by application,
    /// the limits and rules in force, and the daemon's figures after writing it. The
    /// last sample's age counts from this call.
    pub fn record(
        &self,
        usage: &ApplicationSnapshot,
        status: &StatusReport,
        samples_written: u64,
        database_bytes: u64,
    ) {
        let mut fed = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        fed.state.record(usage, status);
        fed.samples_written = samples_written;
        fed.database_bytes = database_bytes;
        fed.last_sample = Some(Instant::now());
    }

    /// One scrape's answer.
    pub fn scrape(&self) -> Result<String, fmt::Error> {
        let (exported, health) = {
            let fed = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let health = DaemonHealth {
                samples_written: fed.samples_written,
                last_sample_age: fed.last_sample.map(|at| at.elapsed()),
                database_bytes: fed.database_bytes,
            };
            (fed.state.export(), health)
        };
        metrics_text::encode(exported, Some(health))
    }
}

/// The endpoint while it runs; [`MetricsServer::stop`] (or dropping it) ends it.
pub struct MetricsServer {
    server: Arc<Server>,
    address: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

/// Starts answering on `listen` (`IP:PORT`; port 0 picks a free one) from `feed`.
/// Fails with one line naming the address when it is not `IP:PORT` or cannot be bound.
pub fn serve(listen: &str, feed: MetricsFeed) -> anyhow::Result<MetricsServer> {
    let wanted: SocketAddr = listen.parse().map_err(|_| {
        anyhow!(
            "metrics listen address \"{listen}\" is not IP:PORT; give one such as {DEFAULT_LISTEN}"
        )
    })?;
    let server = Server::http(wanted)
        .map_err(|error| anyhow!("cannot listen for metrics on {wanted}: {error}"))?;
    let address = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| anyhow!("metrics server on {wanted} is not on an IP address"))?;
    let server = Arc::new(server);
    let serving = Arc::clone(&server);
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            // ends when `stop` unblocks the server
            for request in serving.incoming_requests() {
                answer(request, &feed);
            }
        })
        .map_err(|error| anyhow!("cannot start the metrics thread: {error}"))?;
    Ok(MetricsServer {
        server,
        address,
        thread: Some(thread),
    })
}

impl MetricsServer {
    /// The address it listens on (the port chosen, when 0 was asked for).
    pub const fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops answering and waits for the thread; tiny_http's own accept thread closes the
    /// socket right after.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            // a panic in the thread was already printed; stopping goes on
            drop(thread.join());
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

type Answer = Response<std::io::Cursor<Vec<u8>>>;

fn with_header(response: Answer, name: &str, value: &str) -> Answer {
    match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        Ok(header) => response.with_header(header),
        // only constants in ASCII come here, which tiny_http takes; the tests read them
        Err(()) => response,
    }
}

fn answer(request: tiny_http::Request, feed: &MetricsFeed) {
    let path = request.url().split('?').next().unwrap_or_default();
    let response =
        match (request.method(), path) {
            (Method::Get, "/metrics") => match feed.scrape() {
                // a length, not chunks, so the simplest scraper reads it
                Ok(text) => with_header(
                    Response::from_string(text).with_chunked_threshold(usize::MAX),
                    "Content-Type",
                    metrics_text::CONTENT_TYPE,
                ),
                Err(_) => Response::from_string("the metrics could not be written\n")
                    .with_status_code(500),
            },
            (_, "/metrics") => with_header(
                Response::from_string("only GET /metrics\n").with_status_code(405),
                "Allow",
                "GET",
            ),
            _ => Response::from_string("not found: the metrics are at /metrics\n")
                .with_status_code(404),
        };
    // a scraper that hung up before the answer: nothing to do about it
    drop(request.respond(response));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chadthrottle_core::metrics_fixtures::busy_machine;
    use std::io::{Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    /// Sends `method path` over a plain TCP connection and returns the status code, the
    /// headers (names lowercased) and the body.
    fn request(
        address: SocketAddr,
        method: &str,
        path: &str,
    ) -> (u16, Vec<(String, String)>, String) {
        let mut stream = TcpStream::connect(address).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .expect("sends");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .expect("reads the answer");
        let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head}"));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        (status, headers, body.to_owned())
    }

    fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of the one sample line that starts with `series`.
    fn sample(body: &str, series: &str) -> f64 {
        let lines: Vec<&str> = body.lines().filter(|l| l.starts_with(series)).collect();
        assert_eq!(lines.len(), 1, "{series} in {body}");
        lines[0][series.len()..].trim().parse().expect("a number")
    }

    #[test]
    fn a_scrape_over_tcp_shows_what_the_daemon_recorded_and_counters_grow() {
        let feed = MetricsFeed::new(5);
        let (usage, status) = busy_machine(3, 1);
        feed.record(&usage, &status, 1, 8192);
        let server = serve("127.0.0.1:0", feed.clone()).expect("serves");
        let (code, headers, body) = request(server.address(), "GET", "/metrics");
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            header_value(&headers, "content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let series = r#"chadthrottle_application_bytes_total{app="/opt/app1/bin/app1",kind="exe",direction="down"}"#;
        let first = sample(&body, series);
        assert_eq!(first, 20_000.0 + 20_001.0);
        assert_eq!(sample(&body, "chadthrottle_daemon_database_bytes"), 8192.0);
        assert_eq!(
            sample(&body, "chadthrottle_daemon_samples_written_total"),
            1.0
        );
        let (usage, status) = busy_machine(3, 2);
        feed.record(&usage, &status, 2, 8192);
        let (_, _, body) = request(server.address(), "GET", "/metrics?x=1");
        assert_eq!(sample(&body, series), 40_000.0 + 40_001.0);
        assert_eq!(
            sample(&body, "chadthrottle_daemon_samples_written_total"),
            2.0
        );
        server.stop();
    }

    #[test]
    fn other_paths_are_not_found_and_other_methods_refused() {
        let server = serve("127.0.0.1:0", MetricsFeed::new(5)).expect("serves");
        let (code, _, body) = request(server.address(), "GET", "/");
        assert_eq!(
            (code, body.as_str()),
            (404, "not found: the metrics are at /metrics\n")
        );
        assert_eq!(request(server.address(), "GET", "/metricsx").0, 404);
        let (code, headers, _) = request(server.address(), "POST", "/metrics");
        assert_eq!((code, header_value(&headers, "allow")), (405, Some("GET")));
        // before the daemon's first sample: the families, without a sample age
        let (code, _, body) = request(server.address(), "GET", "/metrics");
        assert_eq!(code, 200);
        assert!(body.contains("chadthrottle_application_bytes_total{app=\"other\""));
        let age = "chadthrottle_daemon_last_sample_age_seconds";
        assert!(body.contains(&format!("# TYPE {age} gauge")));
        assert!(!body.lines().any(|line| line.starts_with(age)), "{body}");
    }

    #[test]
    fn a_bad_or_busy_address_is_one_line_naming_it() {
        let error = serve("localhost:99999", MetricsFeed::new(5))
            .err()
            .expect("refused")
            .to_string();
        assert_eq!(
            error,
            "metrics listen address \"localhost:99999\" is not IP:PORT; give one such as 127.0.0.1:9867"
        );
        let taken = TcpListener::bind("127.0.0.1:0").expect("binds");
        let address = taken.local_addr().expect("its address");
        let error = serve(&address.to_string(), MetricsFeed::new(5))
            .err()
            .expect("refused")
            .to_string();
        assert!(
            error.starts_with(&format!("cannot listen for metrics on {address}: "))
                && error.contains("in use")
                && !error.contains('\n'),
            "{error}"
        );
    }

    #[test]
    fn once_stopped_the_address_is_free_again() {
        let server = serve("127.0.0.1:0", MetricsFeed::new(5)).expect("serves");
        let address = server.address();
        assert_eq!(request(address, "GET", "/metrics").0, 200);
        server.stop();
        let free = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            TcpListener::bind(address).is_ok()
        });
        assert!(free, "{address} still taken 5 s after stop");
    }

    #[test]
    fn a_scrape_of_a_thousand_applications_answers_in_time() {
        let feed = MetricsFeed::new(1000);
        for round in 1..=2 {
            let (usage, status) = busy_machine(1000, round);
            feed.record(&usage, &status, round, 0);
        }
        let server = serve("127.0.0.1:0", feed).expect("serves");
        let started = Instant::now();
        let (code, headers, body) = request(server.address(), "GET", "/metrics");
        let took = started.elapsed();
        assert_eq!(code, 200);
        assert_eq!(
            header_value(&headers, "content-length"),
            Some(body.len().to_string().as_str())
        );
        let applications = body
            .lines()
            .filter(|l| l.starts_with("chadthrottle_application_processes{"))
            .count();
        assert_eq!(applications, 1001, "1 000 and other");
        // a loose bound a slow, shared test machine keeps; the figure is ct-bench's
        assert!(took < Duration::from_secs(2), "{took:?}");
        println!("scrape of 1 000 applications over TCP: {took:?}");
    }
}
