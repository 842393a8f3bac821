//! What a load step produced ([`LoadRun`]): every request with its intended start, latency and
//! outcome; every connection's life with the child that owned it; per-interval figures; and the
//! latency distribution in HDR histograms, corrected for coordinated omission and raw.
//!
//! Latency is measured from each request's *intended* start (its slot in the open model's
//! schedule), so that a server that stalls is not hidden by a client that waited for it. The
//! closed model has no schedule: its corrected figures back-fill the requests a stalled
//! connection did not send (HdrHistogram's correction, at the run's median latency as the
//! expected interval). Raw figures, from the moment each request went out, are kept beside.
//! A run over TLS also counts the handshakes its connections completed ([`TlsFigures`]).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::ErrorClass;

/// Latencies are recorded in microseconds, from 1 µs to an hour, to 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// A latency in the unit the histograms record.
pub fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// The shape of the traffic, as planned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadShape {
    pub connections: u32,
    /// Requests per second over all connections (open model); `None`: closed model.
    pub rate: Option<f64>,
    pub duration_ms: f64,
    pub keepalive: bool,
}

impl std::fmt::Display for LoadShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} connections, ", self.connections)?;
        match self.rate {
            Some(r) => write!(f, "{r} requests/s (open model)")?,
            None => f.write_str("closed model")?,
        }
        write!(
            f,
            ", {:.1} s, {}",
            self.duration_ms / 1000.0,
            if self.keepalive {
                "keep-alive"
            } else {
                "a connection per request"
            }
        )
    }
}

/// How one load request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LoadOutcome {
    Response {
        status: u16,
        /// What a `shared:` request found: intact (true) or clobbered (false).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shared_intact: Option<bool>,
    },
    Failed {
        class: ErrorClass,
    },
}

impl LoadOutcome {
    pub fn failed(self) -> Option<ErrorClass> {
        match self {
            LoadOutcome::Failed { class } => Some(class),
            LoadOutcome::Response { .. } => None,
        }
    }
}

/// One request of a load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadRequest {
    /// The connection it went on: an index into [`LoadRun::connections`].
    pub conn: u32,
    /// Its intended start, on the run's clock (ms).
    pub at_ms: f64,
    /// From the intended start to the outcome.
    pub latency_ms: f64,
    /// From the moment it went out (its connection's connect, for a new one) to the outcome.
    pub raw_ms: f64,
    pub outcome: LoadOutcome,
    /// Its mix entry carries a fault designed to take down its process.
    pub fatal: bool,
    /// Its mix entry (index into the plan's mix).
    pub mix: u16,
}

/// How a load connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnEnd {
    /// Still open when the load ended (the driver closed it).
    Open,
    /// The driver closed it: a connection per request, or a request that timed out.
    ByClient,
    /// After a response that announced it (`Connection: close`).
    Announced,
    /// The server ended it while no request was on it (EOF or reset): a keep-alive timeout, a
    /// graceful close, or a child that died.
    WhileIdle,
    /// The server ended it under a request, which failed.
    UnderRequest,
    /// It never opened (refused).
    Refused,
}

/// One TCP connection of a load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConnLife {
    /// The driver's connection slot it belonged to.
    pub slot: u32,
    /// The child that served it (the pid of its `X-Served-By`): one connection is served by one
    /// process, so this is the process whose death would take it down.
    pub owner: Option<i32>,
    pub opened_ms: f64,
    pub ended_ms: Option<f64>,
    pub end: ConnEnd,
}

/// One interval of a load (on the run's clock).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub at_ms: f64,
    pub length_ms: f64,
    /// Requests that reached an outcome in the interval.
    pub done: u64,
    pub failed: u64,
    /// Corrected latency of those requests (0 when none).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Interval {
    pub fn throughput(&self) -> f64 {
        if self.length_ms > 0.0 {
            self.done as f64 * 1000.0 / self.length_ms
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} requests/s, {} failed, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.throughput(),
            self.failed,
            self.p50_ms,
            self.p99_ms,
            self.max_ms
        )
    }
}

/// Percentiles of a latency distribution, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms (mean {:.2} ms, {} samples)",
            self.p50, self.p90, self.p99, self.p999, self.max, self.mean, self.count
        )
    }
}

/// Requests by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub requests: u64,
    pub responses: u64,
    /// Responses with a 5xx status.
    pub server_errors: u64,
    pub refused: u64,
    pub reset: u64,
    pub closed: u64,
    pub timeout: u64,
    /// Answers of `shared:` requests that read back their own token…
    #[serde(default)]
    pub shared_intact: u64,
    /// … and that found another request's (TS-1).
    #[serde(default)]
    pub shared_clobbered: u64,
}

impl Counts {
    /// Requests without a response.
    pub fn failed(&self) -> u64 {
        self.refused + self.reset + self.closed + self.timeout
    }

    pub fn count(&mut self, outcome: LoadOutcome) {
        self.requests += 1;
        match outcome {
            LoadOutcome::Response {
                status,
                shared_intact,
            } => {
                self.responses += 1;
                if status >= 500 {
                    self.server_errors += 1;
                }
                match shared_intact {
                    Some(true) => self.shared_intact += 1,
                    Some(false) => self.shared_clobbered += 1,
                    None => {}
                }
            }
            LoadOutcome::Failed { class } => match class {
                ErrorClass::Refused => self.refused += 1,
                ErrorClass::Reset => self.reset += 1,
                ErrorClass::Closed => self.closed += 1,
                ErrorClass::Timeout => self.timeout += 1,
            },
        }
    }
}

/// What a run over TLS adds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsFigures {
    /// Handshakes completed after the warm-up (the drain's included).
    pub handshakes: u64,
    /// Those completed within the planned duration, per second of it.
    pub handshakes_per_s: f64,
}

/// Everything one load produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadRun {
    pub name: String,
    pub shape: LoadShape,
    /// When the measured phase began and how long it lasted until the last outcome (ms, on the
    /// run's clock).
    pub started_ms: f64,
    pub elapsed_ms: f64,
    /// Responses per second that came within the planned duration (those of the drain after
    /// it are counted, not timed).
    pub throughput: f64,
    /// Every connection had an owner before the measured phase (when a warm-up was asked for).
    pub warmed: Option<bool>,
    pub counts: Counts,
    /// Latency from each request's intended start.
    pub corrected: Percentiles,
    /// Latency from each request's actual start.
    pub raw: Percentiles,
    pub intervals: Vec<Interval>,
    /// Connections opened.
    pub opened: usize,
    /// Over TLS: its handshakes (`None` for a plain run, and in recordings made before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFigures>,
    /// Every request (empty when the plan did not keep them): the verdict's, kept in the JSON
    /// so that a stored run can be judged again.
    #[serde(default)]
    pub requests: Vec<LoadRequest>,
    #[serde(default)]
    pub connections: Vec<ConnLife>,
    /// The distributions themselves (µs), for further percentiles.
    #[serde(skip)]
    pub histograms: Option<Box<(Histogram<u64>, Histogram<u64>)>>,
}

impl LoadRun {
    /// The owner of the connection `request` went on.
    pub fn owner(&self, request: &LoadRequest) -> Option<i32> {
        self.connections
            .get(request.conn as usize)
            .and_then(|c| c.owner)
    }

    /// The summary a person reads: the lines include `requests/s: N` and both percentile sets.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        format!(
            "{}: {}\n  requests: {} in {:.2} s, {} answered ({} with 5xx), {} failed \
             (refused {}, reset {}, closed {}, timeout {})\n  requests/s: {:.0}\n  \
             latency (corrected): {}\n  latency (raw): {}\n  connections: {} opened",
            self.name,
            self.shape,
            c.requests,
            self.elapsed_ms / 1000.0,
            c.responses,
            c.server_errors,
            c.failed(),
            c.refused,
            c.reset,
            c.closed,
            c.timeout,
            self.throughput,
            self.corrected,
            self.raw,
            self.opened
        ) + &self.tls_line()
            + &self.shared_line()
    }

    /// Over TLS: the handshakes completed, in all and per second of the measured phase.
    fn tls_line(&self) -> String {
        match &self.tls {
            Some(t) => format!(
                "\n  TLS handshakes: {} completed, {:.0}/s",
                t.handshakes, t.handshakes_per_s
            ),
            None => String::new(),
        }
    }

    /// `shared:` answers, when there were any: how many found their process's state clobbered.
    fn shared_line(&self) -> String {
        let c = &self.counts;
        let answers = c.shared_intact + c.shared_clobbered;
        if answers == 0 {
            return String::new();
        }
        format!(
            "\n  shared state: {} of {answers} clobbered ({:.1} %), {} intact",
            c.shared_clobbered,
            100.0 * c.shared_clobbered as f64 / answers as f64,
            c.shared_intact
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_read_the_histogram_in_ms() {
        let mut h = histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
        assert_eq!(Percentiles::of(&histogram()), Percentiles::default());
    }

    #[test]
    fn counts_by_class() {
        let mut c = Counts::default();
        c.count(LoadOutcome::Response {
            status: 200,
            shared_intact: None,
        });
        c.count(LoadOutcome::Response {
            status: 503,
            shared_intact: None,
        });
        c.count(LoadOutcome::Failed {
            class: ErrorClass::Reset,
        });
        assert_eq!((c.requests, c.responses, c.server_errors), (3, 2, 1));
        assert_eq!((c.failed(), c.reset), (1, 1));
    }

    #[test]
    fn tls_figures_are_written_for_tls_runs_only_and_old_recordings_read() {
        let mut run = LoadRun {
            name: "r".into(),
            shape: LoadShape {
                connections: 1,
                rate: None,
                duration_ms: 1000.0,
                keepalive: true,
            },
            started_ms: 0.0,
            elapsed_ms: 1000.0,
            throughput: 0.0,
            warmed: None,
            counts: Counts::default(),
            corrected: Percentiles::default(),
            raw: Percentiles::default(),
            intervals: Vec::new(),
            opened: 1,
            tls: None,
            requests: Vec::new(),
            connections: Vec::new(),
            histograms: None,
        };
        let plain = serde_json::to_value(&run).unwrap();
        assert!(plain.get("tls").is_none(), "{plain}");
        assert_eq!(serde_json::from_value::<LoadRun>(plain).unwrap().tls, None);
        assert!(!run.summary().contains("TLS"));

        let figures = TlsFigures {
            handshakes: 12,
            handshakes_per_s: 12.0,
        };
        run.tls = Some(figures);
        let text = serde_json::to_string(&run).unwrap();
        assert_eq!(
            serde_json::from_str::<LoadRun>(&text).unwrap().tls,
            Some(figures)
        );
        assert!(run.summary().contains("TLS handshakes: 12 completed, 12/s"));
    }
}
