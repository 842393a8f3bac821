//! A run's picture: one SVG on one time axis — a lane per connection (each request a bar from
//! sent to outcome, coloured by outcome, its fault written on it; a `shared:` request whose
//! process slot was overwritten hatched, the request that overwrote it outlined, a line from the
//! one's write to the other's bar; the moment the server ended the connection), a lane per server
//! process (its life, generation, how it ended, the child it
//! replaced), the scoreboard as a heat map (worker × time, a colour per state), each load's
//! throughput and latency per interval, the fault windows shaded, and a marker where a step
//! failed.
//!
//! [`Picture::of`] reads the recording into lanes (a plain model the tests count); [`Picture::svg`]
//! draws them. Everything is inline: no script, no font, no external reference.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::SharedNote;
use crate::judge::Run;
use crate::observe::load::Interval;
use crate::observe::{Entry, ErrorClass, Observation, Sent};

/// Width of the drawing and of the label column, in px.
const WIDTH: f64 = 1100.0;
const LABEL: f64 = 190.0;
const LANE: f64 = 18.0;
const GAP: f64 = 8.0;
const LOAD_HEIGHT: f64 = 70.0;
/// The colour of a clobber (TS-1): the hatch of a clobbered bar, the outline of its clobberer,
/// the line between them.
const CLOBBER: &str = "#d81b60";

/// How a request bar ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BarEnd {
    Status(u16),
    Failed(ErrorClass),
    /// No outcome by the end of the run.
    Pending,
}

/// One request on its connection's lane.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub request: String,
    /// What it asked for (the path, or the fault for a `/fault/...` path).
    pub label: String,
    pub from_ms: f64,
    pub to_ms: Option<f64>,
    pub end: BarEnd,
    /// Words for its tooltip.
    pub detail: String,
    /// What a `shared:` request found (TS-1): a clobbered one is hatched, one that clobbered
    /// others outlined, and a line drawn from the clobberer's write to the clobbered bar.
    pub shared: Option<SharedNote>,
}

/// A connection's lane.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnLane {
    pub name: String,
    pub opened_ms: Option<f64>,
    pub bars: Vec<Bar>,
    /// When the server ended it, and how.
    pub ended_by_server: Option<(f64, ErrorClass)>,
}

/// A process's lane.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcLane {
    pub pid: i32,
    pub master: bool,
    pub from_ms: f64,
    pub to_ms: Option<f64>,
    /// How it ended (`signal 11 (SIGSEGV)`, `exit code 0`).
    pub ending: Option<String>,
    pub crashed: bool,
    pub generation: Option<u64>,
    pub slot: Option<u64>,
    /// The child whose slot it took after that one died.
    pub replaces: Option<i32>,
}

impl ProcLane {
    /// A process first seen at `from_ms`, of which nothing else is known yet.
    fn new(pid: i32, master: bool, from_ms: f64) -> ProcLane {
        ProcLane {
            pid,
            master,
            from_ms,
            to_ms: None,
            ending: None,
            crashed: false,
            generation: None,
            slot: None,
            replaces: None,
        }
    }
}

/// One row of the scoreboard heat map: a worker of one process, its state over time.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardRow {
    pub pid: Option<i32>,
    pub worker: usize,
    /// (from, to, state letter), in time order.
    pub spans: Vec<(f64, f64, char)>,
}

/// A load's figures per interval.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadLane {
    pub name: String,
    pub intervals: Vec<Interval>,
}

/// A moment the picture marks: a step that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub at_ms: f64,
    pub line: usize,
    pub text: String,
}

/// A run in lanes, on one time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// The scenario's end (the harness's teardown after it is not drawn).
    pub span_ms: f64,
    /// The part of the time axis being drawn.
    view: (f64, f64),
    pub conns: Vec<ConnLane>,
    pub procs: Vec<ProcLane>,
    pub board: Vec<BoardRow>,
    pub loads: Vec<LoadLane>,
    /// (from, to, what): from a fatal request or a kill to the death it caused.
    pub windows: Vec<(f64, f64, String)>,
    pub marks: Vec<Mark>,
}

impl Picture {
    /// The lanes of a run's recording.
    pub fn of(run: &Run) -> Picture {
        let timeline = &run.recording.timeline;
        let span_ms = run
            .recording
            .scenario()
            .last()
            .map_or(1.0, |e| e.at_ms)
            .max(1.0);
        Picture {
            span_ms,
            view: (0.0, span_ms),
            conns: conn_lanes(timeline, &run.recording.sent),
            procs: proc_lanes(timeline, run.recording.master, span_ms),
            board: board_rows(timeline, span_ms),
            loads: load_lanes(timeline),
            windows: fault_windows(run),
            marks: failed_steps(run),
        }
    }

    fn x(&self, ms: f64) -> f64 {
        let (from, to) = self.view;
        LABEL + ((ms.clamp(from, to) - from) / (to - from).max(0.001)) * (WIDTH - LABEL - 10.0)
    }

    /// Whether something from `a` to `b` shows in the view.
    fn shows(&self, a: f64, b: f64) -> bool {
        b >= self.view.0 && a <= self.view.1
    }

    /// The span around the fault windows, when they are a small part of the run: what a second,
    /// zoomed picture shows.
    pub fn around_faults(&self) -> Option<(f64, f64)> {
        let from = self
            .windows
            .iter()
            .map(|w| w.0)
            .fold(f64::INFINITY, f64::min);
        let to = self.windows.iter().map(|w| w.1).fold(0.0, f64::max);
        if !from.is_finite() {
            return None;
        }
        let pad = ((to - from) * 0.5).max(10.0);
        let view = ((from - pad).max(0.0), (to + pad).min(self.span_ms));
        (view.1 - view.0 < 0.4 * self.span_ms).then_some(view)
    }

    /// The whole run as one `<svg>` element; ids start with `id` (unique in the document).
    pub fn svg(&self, id: &str) -> String {
        self.svg_between(id, 0.0, self.span_ms)
    }

    /// The picture of the time from `from` to `to` (ms).
    pub fn svg_between(&self, id: &str, from: f64, to: f64) -> String {
        let mut view = self.clone();
        view.view = (from, to.max(from + 0.001));
        view.draw(id)
    }

    fn draw(&self, id: &str) -> String {
        let mut body = String::new();
        let mut y = 28.0;
        self.axis(&mut body);
        y = self.section(&mut body, y, "connections");
        let mut lane_y: BTreeMap<&str, f64> = BTreeMap::new();
        for lane in &self.conns {
            lane_y.insert(&lane.name, y);
            self.conn_lane(&mut body, id, lane, y);
            y += LANE;
        }
        self.clobbers(&mut body, id, &lane_y);
        y = self.section(&mut body, y + GAP, "processes");
        for lane in &self.procs {
            self.proc_lane(&mut body, lane, y);
            y += LANE;
        }
        if !self.board.is_empty() {
            y = self.section(&mut body, y + GAP, "scoreboard (worker × time)");
            y = self.heat_map(&mut body, y);
        }
        for load in &self.loads {
            y = self.section(&mut body, y + GAP, &format!("load {}", load.name));
            self.load_chart(&mut body, load, y);
            y += LOAD_HEIGHT;
        }
        let height = y + 8.0 + self.legend_height();
        let mut back = String::new();
        for (n, (from, to, what)) in self
            .windows
            .iter()
            .enumerate()
            .filter(|(_, w)| self.shows(w.0, w.1))
        {
            let (a, b) = (self.x(*from), self.x(*to).max(self.x(*from) + 2.0));
            let _ = write!(
                back,
                r##"<rect class="window" id="{id}-fault-{n}" x="{a:.1}" y="20" width="{:.1}" height="{:.1}" fill="#c62828" fill-opacity="0.10"><title>{}</title></rect>"##,
                b - a,
                height - 20.0,
                esc(&format!("fault window: {what}"))
            );
        }
        for m in self.marks.iter().filter(|m| self.shows(m.at_ms, m.at_ms)) {
            let x = self.x(m.at_ms);
            let _ = write!(
                body,
                r##"<g class="mark" id="{id}-step-{}"><line x1="{x:.1}" y1="20" x2="{x:.1}" y2="{:.1}" stroke="#b71c1c" stroke-width="1.5" stroke-dasharray="4 2"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#b71c1c">line {}</text><title>{}</title></g>"##,
                m.line,
                height - 4.0,
                x + 2.0,
                height - 6.0,
                m.line,
                esc(&m.text)
            );
        }
        self.legend(&mut body, y + 8.0);
        format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="picture" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="11">{back}{body}</svg>"#
        )
    }

    fn axis(&self, out: &mut String) {
        let (from, to) = self.view;
        let step = nice_step((to - from) / 8.0);
        let _ = write!(
            out,
            "<line x1=\"{LABEL}\" y1=\"20\" x2=\"{:.1}\" y2=\"20\" stroke=\"#555\"/>",
            WIDTH - 10.0
        );
        let mut t = (from / step).ceil() * step;
        while t <= to + 0.001 {
            let x = self.x(t);
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" y1=\"16\" x2=\"{x:.1}\" y2=\"20\" stroke=\"#555\"/><text x=\"{x:.1}\" y=\"12\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
                time_label(t)
            );
            t += step;
        }
    }

    fn section(&self, out: &mut String, y: f64, title: &str) -> f64 {
        let _ = write!(
            out,
            "<text x=\"4\" y=\"{:.1}\" font-weight=\"bold\" fill=\"#222\">{}</text>",
            y + 12.0,
            esc(title)
        );
        y + 16.0
    }

    fn conn_lane(&self, out: &mut String, id: &str, lane: &ConnLane, y: f64) {
        let _ = write!(
            out,
            "<g class=\"lane conn\" data-name=\"{}\"><text x=\"12\" y=\"{:.1}\" fill=\"#222\">{}</text>",
            esc(&lane.name),
            y + 12.0,
            esc(&lane.name)
        );
        if let Some(open) = lane.opened_ms {
            let _ = write!(
                out,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#bbb\"/>",
                self.x(open),
                y + 9.0,
                self.x(lane.ended_by_server.map_or(self.span_ms, |e| e.0)),
                y + 9.0
            );
        }
        for bar in &lane.bars {
            if !self.shows(bar.from_ms, bar.to_ms.unwrap_or(self.span_ms)) {
                continue;
            }
            let a = self.x(bar.from_ms);
            let b = self.x(bar.to_ms.unwrap_or(self.span_ms)).max(a + 3.0);
            let dash = if bar.end == BarEnd::Pending {
                " stroke=\"#555\" stroke-dasharray=\"3 2\""
            } else {
                ""
            };
            let _ = write!(
                out,
                "<g class=\"bar\" id=\"{id}-req-{}\"><rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"12\" rx=\"2\" fill=\"{}\"{dash}/>",
                anchor(&bar.request),
                y + 3.0,
                b - a,
                outcome_colour(bar.end)
            );
            if let Some(note) = &bar.shared {
                if !note.intact {
                    let _ = write!(
                        out,
                        "<path class=\"clobbered\" d=\"{}\" stroke=\"{CLOBBER}\" stroke-width=\"1.5\" fill=\"none\"/>",
                        hatch(a, b, y + 3.0, 12.0)
                    );
                }
                if !note.clobbered.is_empty() {
                    let _ = write!(
                        out,
                        "<rect class=\"clobberer\" x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"12\" rx=\"2\" fill=\"none\" stroke=\"{CLOBBER}\" stroke-width=\"2\"/>",
                        y + 3.0,
                        b - a
                    );
                }
            }
            // The label where it fits, else after the bar.
            let text_x = if b - a > 7.0 * bar.label.len() as f64 {
                a + 3.0
            } else {
                b + 3.0
            };
            let fill = if b - a > 7.0 * bar.label.len() as f64 {
                "#fff"
            } else {
                "#333"
            };
            let _ = write!(
                out,
                "<text x=\"{text_x:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{fill}\">{}</text><title>{}</title></g>",
                y + 12.5,
                esc(&bar.label),
                esc(&bar.detail)
            );
        }
        if let Some((at, class)) = lane.ended_by_server.filter(|e| self.shows(e.0, e.0)) {
            let x = self.x(at);
            let _ = write!(
                out,
                "<path class=\"server-end\" d=\"M{x:.1},{:.1} l-4,-6 h8 z\" fill=\"#000\"><title>{}</title></path>",
                y + 16.0,
                esc(&format!("ended by the server ({class}) at {at:.1} ms"))
            );
        }
        out.push_str("</g>");
    }

    /// A line from where each clobbering request began (about when it wrote its token) to the bar
    /// of each request that found that token in place of its own, an arrowhead at the clobbered
    /// bar; none between two bars of one lane (one connection's requests do not overlap).
    fn clobbers(&self, out: &mut String, id: &str, lane_y: &BTreeMap<&str, f64>) {
        let bars: BTreeMap<&str, (&str, &Bar)> = self
            .conns
            .iter()
            .flat_map(|l| {
                l.bars
                    .iter()
                    .map(move |b| (b.request.as_str(), (l.name.as_str(), b)))
            })
            .collect();
        for (victim, (lane, bar)) in &bars {
            let Some(by) = bar.shared.as_ref().and_then(|n| n.by.as_deref()) else {
                continue;
            };
            let Some(&(by_lane, by_bar)) = bars.get(by) else {
                continue;
            };
            let at = by_bar.from_ms.clamp(
                bar.from_ms,
                bar.to_ms.unwrap_or(self.span_ms).max(bar.from_ms),
            );
            if by_lane == *lane || !self.shows(at, at) {
                continue;
            }
            let (x, from) = (self.x(at), lane_y[by_lane] + 9.0);
            // To the clobbered bar's near edge.
            let (tip, dir) = if from < lane_y[lane] {
                (lane_y[lane] + 3.0, -1.0)
            } else {
                (lane_y[lane] + 15.0, 1.0)
            };
            let _ = write!(
                out,
                "<g class=\"clobber\" id=\"{id}-clobber-{}\"><circle cx=\"{x:.1}\" cy=\"{from:.1}\" r=\"2\" fill=\"{CLOBBER}\"/><line x1=\"{x:.1}\" y1=\"{from:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{CLOBBER}\" stroke-width=\"1.5\"/><path d=\"M{x:.1},{tip:.1} l-3.5,{:.1} h7 z\" fill=\"{CLOBBER}\"/><title>{}</title></g>",
                anchor(victim),
                tip + 5.0 * dir,
                5.0 * dir,
                esc(&format!(
                    "{by} clobbered {victim}'s shared state: {by} wrote its token while {victim} held, and {victim} read it back"
                ))
            );
        }
    }

    fn proc_lane(&self, out: &mut String, lane: &ProcLane, y: f64) {
        let mut label = if lane.master {
            format!("pid {} master", lane.pid)
        } else {
            format!("pid {}", lane.pid)
        };
        if let Some(g) = lane.generation {
            let _ = write!(label, " gen {g}");
        }
        if let Some(r) = lane.replaces {
            let _ = write!(label, " ← {r}");
        }
        let a = self.x(lane.from_ms);
        let b = self.x(lane.to_ms.unwrap_or(self.span_ms)).max(a + 2.0);
        let colour = if lane.master { "#1a237e" } else { "#5c7fa3" };
        let mut detail = format!(
            "{label}: from {:.1} ms to {}",
            lane.from_ms,
            lane.to_ms
                .map_or("the end of the run".to_string(), |t| format!("{t:.1} ms"))
        );
        if let Some(e) = &lane.ending {
            let _ = write!(detail, ", {e}");
        }
        if let Some(s) = lane.slot {
            let _ = write!(detail, ", slot {s}");
        }
        let _ = write!(
            out,
            "<g class=\"lane proc\" data-pid=\"{}\"><text x=\"12\" y=\"{:.1}\" fill=\"#222\">{}</text><title>{}</title>",
            lane.pid,
            y + 12.0,
            esc(&label),
            esc(&detail)
        );
        if self.shows(lane.from_ms, lane.to_ms.unwrap_or(self.span_ms)) {
            let _ = write!(
                out,
                "<rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"10\" fill=\"{colour}\"/>",
                y + 4.0,
                b - a
            );
        }
        if let (Some(e), Some(to)) = (&lane.ending, lane.to_ms.filter(|t| self.shows(*t, *t))) {
            let x = self.x(to);
            let colour = if lane.crashed { "#c62828" } else { "#333" };
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{colour}\">{}{}</text>",
                x + 3.0,
                y + 12.5,
                if lane.crashed { "✗ " } else { "" },
                esc(e)
            );
        }
        out.push_str("</g>");
    }

    /// Rows of about 5 px, less when there are many workers; returns the y below.
    fn heat_map(&self, out: &mut String, y: f64) -> f64 {
        let row = (240.0 / self.board.len() as f64).clamp(1.5, 6.0);
        let mut last_pid = None;
        let mut labelled_at = f64::NEG_INFINITY;
        for (i, r) in self.board.iter().enumerate() {
            let ry = y + i as f64 * row;
            // A process's label where its rows begin, when it does not overlap the last one.
            if r.pid != last_pid && ry - labelled_at >= 9.0 {
                last_pid = r.pid;
                labelled_at = ry;
                let _ = write!(
                    out,
                    "<text x=\"12\" y=\"{:.1}\" font-size=\"9\" fill=\"#555\">{}</text>",
                    ry + 8.0,
                    r.pid.map_or("workers".into(), |p| format!("pid {p}"))
                );
            }
            for &(from, to, state) in r.spans.iter().filter(|s| self.shows(s.0, s.1)) {
                let a = self.x(from);
                let b = self.x(to).max(a + 0.5);
                let _ = write!(
                    out,
                    "<rect x=\"{a:.1}\" y=\"{ry:.1}\" width=\"{:.1}\" height=\"{row:.1}\" fill=\"{}\"/>",
                    b - a,
                    state_colour(state)
                );
            }
        }
        y + self.board.len() as f64 * row + 10.0
    }

    fn load_chart(&self, out: &mut String, load: &LoadLane, y: f64) {
        let top = load
            .intervals
            .iter()
            .map(Interval::throughput)
            .fold(1.0, f64::max);
        let slowest = load
            .intervals
            .iter()
            .map(|i| i.p99_ms)
            .fold(0.001, f64::max);
        let h = LOAD_HEIGHT - 14.0;
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        for i in load
            .intervals
            .iter()
            .filter(|i| self.shows(i.at_ms, i.at_ms + i.length_ms))
        {
            let a = self.x(i.at_ms);
            let b = self.x(i.at_ms + i.length_ms).max(a + 1.0);
            let bh = h * i.throughput() / top;
            let _ = write!(
                out,
                "<rect class=\"interval\" x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#bbdefb\"><title>{}</title></rect>",
                y + h - bh,
                b - a,
                esc(&format!("{:.0} ms: {i}", i.at_ms))
            );
            if i.failed > 0 {
                let _ = write!(
                    out,
                    "<rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"4\" fill=\"#c62828\"/>",
                    y + h + 1.0,
                    b - a
                );
            }
            let mid = (a + b) / 2.0;
            p50.push(format!("{mid:.1},{:.1}", y + h - h * i.p50_ms / slowest));
            p99.push(format!("{mid:.1},{:.1}", y + h - h * i.p99_ms / slowest));
        }
        for (points, colour) in [(&p50, "#2e7d32"), (&p99, "#d84315")] {
            if !points.is_empty() {
                let _ = write!(
                    out,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>",
                    points.join(" ")
                );
            }
        }
        let _ = write!(
            out,
            "<text x=\"12\" y=\"{:.1}\" font-size=\"9\" fill=\"#555\">≤ {top:.0} req/s</text><text x=\"12\" y=\"{:.1}\" font-size=\"9\" fill=\"#d84315\">p99 ≤ {slowest:.1} ms</text><text x=\"12\" y=\"{:.1}\" font-size=\"9\" fill=\"#2e7d32\">p50</text>",
            y + 10.0,
            y + 22.0,
            y + 34.0
        );
    }

    /// Whether a bar shows a clobber (TS-1): the legend explains the marks then.
    fn has_clobbers(&self) -> bool {
        self.conns.iter().flat_map(|l| &l.bars).any(|b| {
            b.shared
                .as_ref()
                .is_some_and(|n| !n.intact || !n.clobbered.is_empty())
        })
    }

    fn legend_height(&self) -> f64 {
        if self.has_clobbers() {
            46.0
        } else {
            30.0
        }
    }

    fn legend(&self, out: &mut String, y: f64) {
        let items: [(&str, &str); 12] = [
            ("2xx", outcome_colour(BarEnd::Status(200))),
            ("4xx", outcome_colour(BarEnd::Status(400))),
            ("5xx", outcome_colour(BarEnd::Status(500))),
            ("closed", outcome_colour(BarEnd::Failed(ErrorClass::Closed))),
            ("reset", outcome_colour(BarEnd::Failed(ErrorClass::Reset))),
            (
                "refused",
                outcome_colour(BarEnd::Failed(ErrorClass::Refused)),
            ),
            (
                "timeout",
                outcome_colour(BarEnd::Failed(ErrorClass::Timeout)),
            ),
            ("_ waiting", state_colour('_')),
            ("R reading", state_colour('R')),
            ("W writing", state_colour('W')),
            ("K keep-alive", state_colour('K')),
            ("G/C/S other", state_colour('G')),
        ];
        let mut x = 12.0;
        for (label, colour) in items {
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\" stroke=\"#999\" stroke-width=\"0.5\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#333\">{label}</text>",
                y + 2.0,
                x + 13.0,
                y + 11.0
            );
            x += 16.0 + 6.0 * label.chars().count() as f64 + 8.0;
        }
        if !self.has_clobbers() {
            return;
        }
        // A second row: the shared-state marks (TS-1), the first two on a 2xx swatch.
        let (y, green) = (y + 16.0, outcome_colour(BarEnd::Status(200)));
        let hatched = format!(
            "<rect x=\"12\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{green}\"/><path class=\"legend-clobbered\" d=\"{}\" stroke=\"{CLOBBER}\" stroke-width=\"1.5\" fill=\"none\"/>",
            y + 2.0,
            hatch(12.0, 22.0, y + 2.0, 10.0)
        );
        let outlined = format!(
            "<rect x=\"12\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{green}\" stroke=\"{CLOBBER}\" stroke-width=\"2\"/>",
            y + 2.0
        );
        let arrow = format!(
            "<line x1=\"17\" y1=\"{y:.1}\" x2=\"17\" y2=\"{:.1}\" stroke=\"{CLOBBER}\" stroke-width=\"1.5\"/><path d=\"M17,{:.1} l-3.5,-5 h7 z\" fill=\"{CLOBBER}\"/>",
            y + 7.0,
            y + 12.0
        );
        let items = [
            ("shared state clobbered", hatched),
            ("clobbered another's", outlined),
            (
                "from the clobberer's write to the request it clobbered",
                arrow,
            ),
        ];
        let mut x = 12.0;
        for (label, mark) in items {
            // Each mark is drawn at x = 12 and moved to its place.
            let _ = write!(
                out,
                "<g transform=\"translate({:.1},0)\">{mark}</g><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#333\">{}</text>",
                x - 12.0,
                x + 13.0,
                y + 11.0,
                esc(label)
            );
            x += 16.0 + 6.0 * label.chars().count() as f64 + 8.0;
        }
    }
}

/// Strokes at 45° across the box from `a` to `b` (px) and `top` to `top + h`, as one path's
/// data: a hatch (an SVG pattern would take a `url(#…)` reference).
fn hatch(a: f64, b: f64, top: f64, h: f64) -> String {
    let mut d = String::new();
    // Each stroke from (x0, top + h) up to (x0 + h, top), cut to the box.
    let mut x0 = a - h + 3.0;
    while x0 < b {
        let (sx, sy) = if x0 < a {
            (a, top + h - (a - x0))
        } else {
            (x0, top + h)
        };
        let (ex, ey) = if x0 + h > b {
            (b, top + (x0 + h - b))
        } else {
            (x0 + h, top)
        };
        if ex > sx {
            let _ = write!(d, "M{sx:.1},{sy:.1}L{ex:.1},{ey:.1}");
        }
        x0 += 6.0;
    }
    d
}

fn conn_lanes(timeline: &[Entry], sent: &[Sent]) -> Vec<ConnLane> {
    let faults: BTreeMap<&str, String> = sent
        .iter()
        .filter_map(|s| Some((s.name.as_str(), s.fault.as_ref()?.to_string())))
        .collect();
    let mut lanes: Vec<ConnLane> = Vec::new();
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    let mut lane_of = |lanes: &mut Vec<ConnLane>, conn: &str| -> usize {
        *at.entry(conn.to_string()).or_insert_with(|| {
            lanes.push(ConnLane {
                name: conn.to_string(),
                opened_ms: None,
                bars: Vec::new(),
                ended_by_server: None,
            });
            lanes.len() - 1
        })
    };
    let mut bar_at: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let shared = super::shared_notes(timeline);
    let scenario_end = timeline
        .iter()
        .position(|e| matches!(e.what, Observation::Teardown))
        .unwrap_or(timeline.len());
    for (n, e) in timeline.iter().enumerate() {
        match &e.what {
            Observation::ConnOpened { conn, .. } => {
                let i = lane_of(&mut lanes, conn);
                lanes[i].opened_ms.get_or_insert(e.at_ms);
            }
            Observation::ConnRefused { conn, .. } => {
                lane_of(&mut lanes, conn);
            }
            Observation::RequestSent {
                request,
                conn,
                target,
                ..
            } => {
                let i = lane_of(&mut lanes, conn);
                // The fault it carried, else its name.
                let label = faults
                    .get(request.as_str())
                    .cloned()
                    .unwrap_or_else(|| request.clone());
                lanes[i].bars.push(Bar {
                    request: request.clone(),
                    label,
                    from_ms: e.at_ms,
                    to_ms: None,
                    end: BarEnd::Pending,
                    detail: format!("{request}: {target} on {conn}, no outcome"),
                    shared: None,
                });
                bar_at.insert(request.clone(), (i, lanes[i].bars.len() - 1));
            }
            Observation::Response {
                request,
                status,
                served_by,
                latency_ms,
                ..
            } => {
                if let Some(&(i, b)) = bar_at.get(request) {
                    let bar = &mut lanes[i].bars[b];
                    bar.to_ms = Some(e.at_ms);
                    bar.end = BarEnd::Status(*status);
                    bar.shared = shared.get(request).cloned();
                    bar.detail = format!(
                        "{request}: {status} after {latency_ms:.1} ms{}{}",
                        served_by
                            .map(|b| format!(" from pid {}", b.pid))
                            .unwrap_or_default(),
                        bar.shared
                            .as_ref()
                            .map(|n| format!(", {}", n.words()))
                            .unwrap_or_default()
                    );
                }
            }
            Observation::RequestFailed {
                request,
                conn,
                class,
                latency_ms,
            } => {
                let (i, b) = match bar_at.get(request) {
                    Some(&ib) => ib,
                    None => {
                        // Refused before it was sent: a bar of its own.
                        let i = lane_of(&mut lanes, conn);
                        lanes[i].bars.push(Bar {
                            request: request.clone(),
                            label: request.clone(),
                            from_ms: e.at_ms,
                            to_ms: None,
                            end: BarEnd::Pending,
                            detail: String::new(),
                            shared: None,
                        });
                        (i, lanes[i].bars.len() - 1)
                    }
                };
                let bar = &mut lanes[i].bars[b];
                bar.to_ms = Some(e.at_ms);
                bar.end = BarEnd::Failed(*class);
                bar.detail = format!("{request}: FAILED ({class}) after {latency_ms:.1} ms");
            }
            Observation::ConnClosedByServer { conn, class } if n < scenario_end => {
                let i = lane_of(&mut lanes, conn);
                lanes[i].ended_by_server.get_or_insert((e.at_ms, *class));
            }
            _ => {}
        }
    }
    lanes
}

fn proc_lanes(timeline: &[Entry], master: Option<i32>, span_ms: f64) -> Vec<ProcLane> {
    let mut lanes: Vec<ProcLane> = Vec::new();
    if let Some(pid) = master {
        lanes.push(ProcLane::new(pid, true, 0.0));
    }
    let mut slot_holder: BTreeMap<u64, i32> = BTreeMap::new();
    let mut dead: Vec<i32> = Vec::new();
    let find = |lanes: &mut Vec<ProcLane>, pid: i32, at: f64| -> usize {
        match lanes.iter().position(|l| l.pid == pid) {
            Some(i) => i,
            None => {
                lanes.push(ProcLane::new(pid, false, at));
                lanes.len() - 1
            }
        }
    };
    for e in timeline {
        match &e.what {
            Observation::ServerEvent {
                event: refhttpd::EventKind::ChildSpawned,
                detail,
                ..
            } => {
                let Some(pid) = detail.get("child").and_then(|c| c.as_i64()) else {
                    continue;
                };
                let i = find(&mut lanes, pid as i32, e.at_ms);
                lanes[i].generation = detail.get("generation").and_then(|g| g.as_u64());
                if let Some(slot) = detail.get("slot").and_then(|s| s.as_u64()) {
                    lanes[i].slot = Some(slot);
                    if let Some(old) = slot_holder.insert(slot, pid as i32) {
                        if dead.contains(&old) {
                            lanes[i].replaces = Some(old);
                        }
                    }
                }
            }
            Observation::Scoreboard(s) => {
                for pid in s.pids() {
                    if Some(pid) != master {
                        find(&mut lanes, pid, e.at_ms);
                    }
                }
            }
            Observation::Response {
                served_by: Some(by),
                ..
            } if Some(by.pid) != master => {
                find(&mut lanes, by.pid, e.at_ms);
            }
            Observation::ChildExited { pid, ending } => {
                let i = find(&mut lanes, *pid, e.at_ms);
                lanes[i].to_ms.get_or_insert(e.at_ms);
                lanes[i].ending.get_or_insert(ending.to_string());
                lanes[i].crashed |= ending.is_crash();
                dead.push(*pid);
            }
            Observation::MasterExited { ending, .. } => {
                if let Some(l) = lanes.iter_mut().find(|l| l.master) {
                    l.to_ms.get_or_insert(e.at_ms);
                    l.ending.get_or_insert(ending.to_string());
                }
            }
            _ => {}
        }
    }
    // An end after the scenario (the harness's own stop) is not the picture's.
    for l in &mut lanes {
        if l.to_ms.is_some_and(|t| t > span_ms) {
            l.to_ms = None;
            l.ending = None;
        }
    }
    lanes
}

/// The scoreboard's worker letters over time, a row per (process, worker) in order of first
/// sight; consecutive samples of one state are one span.
fn board_rows(timeline: &[Entry], span_ms: f64) -> Vec<BoardRow> {
    let samples = crate::observe::scoreboard_samples(timeline);
    let mut rows: Vec<BoardRow> = Vec::new();
    let mut index: BTreeMap<(Option<i32>, usize), usize> = BTreeMap::new();
    for (n, (at, s)) in samples.iter().enumerate() {
        let until = samples.get(n + 1).map_or(span_ms, |next| next.0);
        for child in &s.children {
            let pid = Some(child.pid);
            for (w, state) in child.workers.chars().enumerate() {
                let key = (pid, w);
                let r = *index.entry(key).or_insert_with(|| {
                    rows.push(BoardRow {
                        pid,
                        worker: w,
                        spans: Vec::new(),
                    });
                    rows.len() - 1
                });
                let spans = &mut rows[r].spans;
                match spans.last_mut() {
                    Some(last) if last.2 == state && (last.1 - at).abs() < 1e-9 => last.1 = until,
                    _ => spans.push((*at, until, state)),
                }
            }
        }
    }
    // Rows of one process together, in order of first sight.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let first_of = |pid: Option<i32>| rows.iter().position(|r| r.pid == pid).unwrap_or(0);
    order.sort_by_key(|&i| (first_of(rows[i].pid), rows[i].worker));
    order.into_iter().map(|i| rows[i].clone()).collect()
}

fn load_lanes(timeline: &[Entry]) -> Vec<LoadLane> {
    let mut lanes: Vec<LoadLane> = Vec::new();
    for e in timeline {
        match &e.what {
            Observation::LoadStarted { load, .. } => lanes.push(LoadLane {
                name: load.clone(),
                intervals: Vec::new(),
            }),
            Observation::LoadInterval { load, interval } => {
                if let Some(l) = lanes.iter_mut().find(|l| &l.name == load) {
                    l.intervals.push(*interval);
                }
            }
            _ => {}
        }
    }
    lanes
}

/// From each fatal request sent, or each kill, to the first child exit after it.
fn fault_windows(run: &Run) -> Vec<(f64, f64, String)> {
    let timeline = &run.recording.timeline;
    let fatal: BTreeMap<&str, String> = run
        .recording
        .sent
        .iter()
        .filter(|s| s.fatal())
        .filter_map(|s| Some((s.name.as_str(), s.fault.as_ref()?.to_string())))
        .collect();
    let mut out = Vec::new();
    for (n, e) in timeline.iter().enumerate() {
        let what = match &e.what {
            Observation::RequestSent { request, .. } if fatal.contains_key(request.as_str()) => {
                format!("/fault/{}", fatal[request.as_str()])
            }
            Observation::Killed { pid, signal } => format!("kill {pid} with {signal}"),
            _ => continue,
        };
        let end = timeline[n..]
            .iter()
            .find(|x| matches!(x.what, Observation::ChildExited { .. }))
            .map_or(e.at_ms, |x| x.at_ms);
        out.push((e.at_ms, end, what));
    }
    out
}

/// The steps whose result failed, at the moment each began.
fn failed_steps(run: &Run) -> Vec<Mark> {
    run.recording
        .steps
        .iter()
        .filter(|s| s.result.failed())
        .filter_map(|s| {
            let at = run.recording.timeline.iter().find_map(|e| match &e.what {
                Observation::Step { line, .. } if *line == s.line => Some(e.at_ms),
                _ => None,
            })?;
            Some(Mark {
                at_ms: at,
                line: s.line,
                text: s.text.clone(),
            })
        })
        .collect()
}

fn outcome_colour(end: BarEnd) -> &'static str {
    match end {
        BarEnd::Status(s) if s < 400 => "#2e7d32",
        BarEnd::Status(s) if s < 500 => "#f9a825",
        BarEnd::Status(_) => "#ef6c00",
        BarEnd::Failed(ErrorClass::Closed) => "#c62828",
        BarEnd::Failed(ErrorClass::Reset) => "#6a1b9a",
        BarEnd::Failed(ErrorClass::Refused) => "#37474f",
        BarEnd::Failed(ErrorClass::Timeout) => "#8d6e63",
        BarEnd::Pending => "#e0e0e0",
    }
}

/// A colour per scoreboard letter (mod_status's).
fn state_colour(state: char) -> &'static str {
    match state {
        '_' => "#e8f5e9",
        'R' => "#ffb74d",
        'W' => "#e53935",
        'K' => "#8e24aa",
        'S' => "#64b5f6",
        'G' => "#fdd835",
        'C' => "#8d6e63",
        'L' | 'D' | 'I' => "#9e9e9e",
        _ => "#fafafa",
    }
}

/// A step for the axis ticks: 1, 2 or 5 × a power of ten ms.
fn nice_step(rough: f64) -> f64 {
    let rough = rough.max(0.001);
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power)
}

fn time_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

/// A name as a fragment identifier: letters, digits and `-` kept, anything else as `_<hex>_`.
pub fn anchor(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
        } else {
            let _ = write!(out, "_{:x}_", c as u32);
        }
    }
    out
}

/// Text for XML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::judge::{Check, RunResult, Verdict};
    use crate::observe::{ChildWorkers, Ending, Recording, Sent, ServedBy, StepResult, Summary};
    use refhttpd::Mpm;

    fn at(at_ms: f64, what: Observation) -> Entry {
        Entry { at_ms, what }
    }

    fn served(pid: i32) -> Option<ServedBy> {
        Some(ServedBy {
            pid,
            slot: Some(0),
            thread: Some(0),
        })
    }

    fn response(request: &str, conn: &str, pid: i32) -> Observation {
        Observation::Response {
            request: request.into(),
            conn: conn.into(),
            status: 200,
            served_by: served(pid),
            closes: false,
            bytes: 2,
            body: crate::spec::BodyShape::Other,
            headers: Vec::new(),
            shared: None,
            latency_ms: 1.0,
        }
    }

    fn sent(request: &str, conn: &str, target: &str) -> Observation {
        Observation::RequestSent {
            request: request.into(),
            conn: conn.into(),
            target: target.into(),
            how: "GET HTTP/1.1".into(),
        }
    }

    fn board(workers: &str, pids: Vec<i32>) -> Observation {
        Observation::Scoreboard(Summary {
            children: pids
                .into_iter()
                .zip(workers.split('|'))
                .map(|(pid, w)| ChildWorkers {
                    pid,
                    workers: w.into(),
                })
                .collect(),
            ..Summary::default()
        })
    }

    /// Two connections on child 11, a crash on one of them; child 12 replaces it.
    pub fn crash_run() -> Run {
        let timeline = vec![
            at(0.0, board("__", vec![11])),
            at(
                1.0,
                Observation::ConnOpened {
                    conn: "a".into(),
                    took_ms: 0.1,
                },
            ),
            at(
                1.0,
                Observation::ConnOpened {
                    conn: "b & c".into(),
                    took_ms: 0.1,
                },
            ),
            at(2.0, sent("warm-a", "a", "/")),
            at(3.0, response("warm-a", "a", 11)),
            at(4.0, sent("warm-b", "b & c", "/")),
            at(5.0, response("warm-b", "b & c", 11)),
            at(5.5, board("K_", vec![11])),
            at(6.0, sent("crash", "b & c", "/fault/crash:segv")),
            at(6.5, board("KW", vec![11])),
            at(
                7.0,
                Observation::RequestFailed {
                    request: "crash".into(),
                    conn: "b & c".into(),
                    class: ErrorClass::Closed,
                    latency_ms: 1.0,
                },
            ),
            at(
                7.0,
                Observation::ConnClosedByServer {
                    conn: "a".into(),
                    class: ErrorClass::Closed,
                },
            ),
            at(
                8.0,
                Observation::ChildExited {
                    pid: 11,
                    ending: Ending::Signaled(11),
                },
            ),
            at(
                9.0,
                Observation::ServerEvent {
                    event: refhttpd::EventKind::ChildSpawned,
                    pid: 10,
                    detail: serde_json::json!({ "child": 12, "slot": 0, "generation": 0 }),
                },
            ),
            at(10.0, board("__", vec![12])),
            at(
                12.0,
                Observation::Step {
                    line: 30,
                    text: "wait for processes=2".into(),
                },
            ),
            at(20.0, Observation::Teardown),
        ];
        let recording = Recording {
            timeline,
            sent: vec![
                Sent {
                    name: "warm-a".into(),
                    conn: "a".into(),
                    fault: None,
                },
                Sent {
                    name: "warm-b".into(),
                    conn: "b & c".into(),
                    fault: None,
                },
                Sent {
                    name: "crash".into(),
                    conn: "b & c".into(),
                    fault: Some("crash:segv".parse().unwrap()),
                },
            ],
            steps: vec![crate::observe::StepRecord {
                line: 30,
                text: "wait for processes=2".into(),
                result: StepResult::TimedOut {
                    observed: "processes=1".into(),
                },
            }],
            master: Some(10),
            ..Recording::default()
        };
        Run {
            case: "t/picture".into(),
            mpm: Mpm::Worker,
            target: crate::spec::Target::Reference,
            verdict: Verdict {
                result: RunResult::Failed,
                checks: vec![Check {
                    what: "line 30: wait for processes=2".into(),
                    about: crate::judge::About::Step { line: 30 },
                    status: crate::judge::Status::Failed,
                    detail: "never held".into(),
                }],
                error: None,
            },
            recording,
            duration_ms: 20.0,
        }
    }

    /// A `shared:` answer (TS-1): `token` its own, `found` what it read back.
    fn shared_response(
        request: &str,
        conn: &str,
        pid: i32,
        token: &str,
        found: &str,
    ) -> Observation {
        let mut r = response(request, conn, pid);
        if let Observation::Response {
            shared, latency_ms, ..
        } = &mut r
        {
            *shared = Some(crate::observe::SharedAnswer {
                intact: token == found,
                token: token.into(),
                found: found.into(),
            });
            *latency_ms = 800.0;
        }
        r
    }

    /// Two overlapping `shared:800ms` requests of child 11 on connections a and b: `second`,
    /// sent while `first` held, wrote over its slot (first found token 2, second's). `elsewhere`,
    /// served by child 12 meanwhile, has token 2 too (tokens are unique only within a process):
    /// it clobbered nothing.
    pub fn shared_run() -> Run {
        let shared = |name: &str, conn: &str| Sent {
            name: name.into(),
            conn: conn.into(),
            fault: Some("shared:800ms".parse().unwrap()),
        };
        let mut timeline = Vec::new();
        for conn in ["a", "b", "c"] {
            timeline.push(at(
                0.5,
                Observation::ConnOpened {
                    conn: conn.into(),
                    took_ms: 0.1,
                },
            ));
        }
        timeline.extend([
            at(1.0, sent("first", "a", "/fault/shared:800ms")),
            at(100.0, sent("elsewhere", "c", "/fault/shared:800ms")),
            at(161.0, sent("second", "b", "/fault/shared:800ms")),
            at(811.0, shared_response("first", "a", 11, "1", "2")),
            at(900.0, shared_response("elsewhere", "c", 12, "2", "2")),
            at(962.0, shared_response("second", "b", 11, "2", "2")),
            at(1000.0, Observation::Teardown),
        ]);
        let mut run = crash_run();
        run.case = "t/shared".into();
        run.recording = Recording {
            timeline,
            sent: vec![
                shared("first", "a"),
                shared("elsewhere", "c"),
                shared("second", "b"),
            ],
            master: Some(10),
            ..Recording::default()
        };
        run.verdict = Verdict {
            result: RunResult::Passed,
            checks: Vec::new(),
            error: None,
        };
        run.duration_ms = 1000.0;
        run
    }

    /// Parses `xml` strictly; the number of elements with each `class` value.
    pub fn well_formed(xml: &str) -> BTreeMap<String, usize> {
        let mut reader = quick_xml::Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        let mut classes = BTreeMap::new();
        let mut depth = 0i64;
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(quick_xml::events::Event::Start(e)) | Ok(quick_xml::events::Event::Empty(e)) => {
                    for a in e.attributes() {
                        let a = a.expect("a well-formed attribute");
                        if a.key.as_ref() == b"class" {
                            let v = String::from_utf8_lossy(&a.value).into_owned();
                            *classes.entry(v).or_default() += 1;
                        }
                    }
                    depth += 1;
                }
                Ok(_) => {}
                Err(e) => panic!("not well-formed at {}: {e}", reader.buffer_position()),
            }
        }
        assert!(depth > 0);
        classes
    }

    #[test]
    fn a_lane_for_every_connection_and_process() {
        let run = crash_run();
        let p = Picture::of(&run);
        let conns: Vec<&str> = p.conns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(conns, ["a", "b & c"]);
        let pids: Vec<i32> = p.procs.iter().map(|l| l.pid).collect();
        assert_eq!(pids, [10, 11, 12]);
        let dead = &p.procs[1];
        assert!(dead.crashed && dead.to_ms == Some(8.0), "{dead:?}");
        assert_eq!(dead.ending.as_deref(), Some("signal 11 (SIGSEGV)"));
        assert_eq!(
            p.procs[2].replaces, None,
            "slot 0's holder before was not known"
        );
        // The crash bar ends red at its failure, with its fault written on it.
        let crash = &p.conns[1].bars[1];
        assert_eq!(
            (crash.label.as_str(), crash.end),
            ("crash:segv", BarEnd::Failed(ErrorClass::Closed))
        );
        assert_eq!(p.conns[0].ended_by_server, Some((7.0, ErrorClass::Closed)));
        // The scoreboard: two workers of 11, two of 12; 11's second worker went W.
        assert_eq!(p.board.len(), 4);
        assert!(p.board[1].spans.iter().any(|s| s.2 == 'W'));
        assert_eq!(p.windows.len(), 1);
        assert_eq!((p.windows[0].0, p.windows[0].1), (6.0, 8.0));
        assert_eq!(p.marks.len(), 1);
    }

    #[test]
    fn the_svg_is_well_formed_and_draws_every_lane() {
        let run = crash_run();
        let svg = Picture::of(&run).svg("run-0");
        let classes = well_formed(&svg);
        assert_eq!(classes.get("lane conn"), Some(&2), "{classes:?}");
        assert_eq!(classes.get("lane proc"), Some(&3), "{classes:?}");
        assert_eq!(classes.get("bar"), Some(&3), "{classes:?}");
        assert_eq!(classes.get("mark"), Some(&1), "{classes:?}");
        assert_eq!(classes.get("window"), Some(&1), "{classes:?}");
        assert!(svg.contains("b &amp; c"), "names are escaped");
        assert!(svg.contains("id=\"run-0-step-30\""));
        assert!(svg.contains("id=\"run-0-req-warm-a\""));
    }

    #[test]
    fn a_clobbered_request_and_its_clobberer_are_marked_and_linked() {
        let run = shared_run();
        let p = Picture::of(&run);
        let bar = |name: &str| {
            p.conns
                .iter()
                .flat_map(|l| &l.bars)
                .find(|b| b.request == name)
                .unwrap()
        };
        let (first, second, elsewhere) = (bar("first"), bar("second"), bar("elsewhere"));
        let note = first.shared.as_ref().expect("first's answer is shared:");
        assert!(!note.intact);
        assert_eq!(note.by.as_deref(), Some("second"), "child 11's token 2");
        assert_eq!(second.shared.as_ref().unwrap().clobbered, ["first"]);
        assert!(elsewhere.shared.as_ref().unwrap().clobbered.is_empty());
        assert!(
            first
                .detail
                .ends_with("from pid 11, shared state clobbered by second"),
            "{}",
            first.detail
        );
        assert!(
            second
                .detail
                .ends_with("shared state intact; clobbered first"),
            "{}",
            second.detail
        );
        assert!(
            elsewhere.detail.ends_with(", shared state intact"),
            "{}",
            elsewhere.detail
        );

        let svg = p.svg("run-0");
        let classes = well_formed(&svg);
        assert_eq!(classes.get("bar"), Some(&3), "{classes:?}");
        // first hatched, second outlined, a line from second's write to first's bar.
        assert_eq!(classes.get("clobbered"), Some(&1), "{classes:?}");
        assert_eq!(classes.get("clobberer"), Some(&1), "{classes:?}");
        assert_eq!(classes.get("clobber"), Some(&1), "{classes:?}");
        assert!(svg.contains("id=\"run-0-clobber-first\""), "{svg}");
        let hatched = svg.find("<path class=\"clobbered\"").unwrap();
        assert!(
            svg[..hatched].rfind("<g class=\"bar\"")
                == svg.find("<g class=\"bar\" id=\"run-0-req-first\""),
            "the hatch is on first's bar"
        );
        assert!(svg.contains(
            "first: 200 after 800.0 ms from pid 11, shared state clobbered by second</title>"
        ));
        assert!(svg.contains("shared state intact; clobbered first</title>"));
        assert!(svg.contains("second clobbered first&#39;s shared state"));
        // The legend explains the marks, on a second row.
        assert_eq!(classes.get("legend-clobbered"), Some(&1), "{classes:?}");
        assert!(svg.contains(">shared state clobbered</text>"));
        assert!(svg.contains(">clobbered another&#39;s</text>"));
        // A run without a clobber has none of it.
        let plain = Picture::of(&crash_run()).svg("run-0");
        for mark in ["clobber", "shared state"] {
            assert!(!plain.contains(mark), "`{mark}` in a run without shared:");
        }
    }

    #[test]
    fn a_clobber_between_two_requests_of_one_lane_is_marked_but_not_linked() {
        let mut run = shared_run();
        for e in &mut run.recording.timeline {
            match &mut e.what {
                Observation::RequestSent { request, conn, .. }
                | Observation::Response { request, conn, .. }
                    if request == "second" =>
                {
                    *conn = "a".into()
                }
                _ => {}
            }
        }
        let svg = Picture::of(&run).svg("run-0");
        let classes = well_formed(&svg);
        assert_eq!(classes.get("clobbered"), Some(&1), "{classes:?}");
        assert_eq!(classes.get("clobberer"), Some(&1), "{classes:?}");
        assert_eq!(classes.get("clobber"), None, "{classes:?}");
    }

    #[test]
    fn anchors_keep_names_apart() {
        assert_eq!(anchor("warm-a"), "warm-a");
        assert_ne!(anchor("a#2"), anchor("a_2"));
        assert!(anchor("a#2")
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
