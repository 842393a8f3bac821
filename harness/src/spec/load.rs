//! The loader: a case file ([`super::file`]) into a [`Case`], or a [`SpecError`] at the place of
//! the first mistake.
//!
//! The second of two stages: serde has already typed every value; here what needs the whole
//! case is checked — connections are opened before they are used, requests get their final
//! names and are named once, expectations and steps name only requests the case sends, the
//! settings pass refhttpd's configuration rules, `checks` are behaviour statements. Positions come
//! from the TOML parser's spans.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use refhttpd::{EventKind, Mpm};
use toml::Spanned;

use super::file::{
    ActionKey, CaseFile, ConditionFile, ConnectExpectFile, CrashExpectFile, Directives, Dur,
    ExpectFile, Kind, LatencyFile, LoadExpectFile, MemoryExpectFile, NameList, PlacementFile,
    RequestExpectFile, SignalName, Size, StatusKeys, StatusValue, StepAction, StepFile, Text,
    UnderKey,
};
use super::{
    statement, warm_request_name, Action, Case, ConnectionToken, CrashExpect, DurationBounds,
    Expect, LoadClass, LoadExpect, LoadMix, LoadStep, MemoryExpect, Placement, Request,
    RequestExpect, Section, ServerSettings, StatusExpect, Step, Target, DEFAULT_WITHIN,
    LOAD_TIMEOUT, STATUS_KEYS,
};
use mpm_faults::Fault;

/// The most connections one load may drive (each is a descriptor in the harness, and one in
/// the server).
const MAX_LOAD_CONNECTIONS: u32 = 10_000;
use crate::spec::condition::{Condition, Count, Quantity};

/// A spec file that cannot be used: where and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct SpecError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Loads and validates one spec file.
pub fn load(path: &Path) -> std::result::Result<Case, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecError {
        path: path.to_path_buf(),
        line: 1,
        column: 1,
        message: format!("cannot read: {e}"),
    })?;
    parse_as(path, &text, true)
}

/// The file's path as an id: `<folder>/<name>`.
fn id_of_path(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let folder = path.parent()?.file_name()?.to_str()?;
    Some(format!("{folder}/{stem}"))
}

/// Case files directly in `dir`, outside any theme folder: each an error (the statement list,
/// `statements.toml`, is not a case).
pub fn misplaced(dir: &Path) -> Vec<SpecError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<SpecError> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| x == "toml")
                && p.file_name().is_some_and(|n| n != "statements.toml")
        })
        .map(|p| {
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
            SpecError {
                message: format!(
                    "a case file belongs in a theme folder: move it to {}/<theme>/{}.toml \
                     (its id is then `<theme>/{}`)",
                    dir.display(),
                    stem.as_deref().unwrap_or("name"),
                    stem.as_deref().unwrap_or("name"),
                ),
                path: p,
                line: 1,
                column: 1,
            }
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Parses and validates spec text as if read from `path` (whose name the id need not match:
/// [`load`] checks that).
pub fn parse(path: &Path, text: &str) -> std::result::Result<Case, SpecError> {
    parse_as(path, text, false)
}

fn parse_as(path: &Path, text: &str, id_from_path: bool) -> std::result::Result<Case, SpecError> {
    let place = Place { path, text };
    let file: CaseFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        place.error(span, e.message().trim())
    })?;
    Loader {
        place,
        id_from_path,
        conns: BTreeSet::new(),
        requests: BTreeSet::new(),
        loads: BTreeSet::new(),
        sent_on: BTreeMap::new(),
        tls: false,
    }
    .case(file)
}

/// Every case file under `dir` (`*.toml` in its theme folders), sorted. Files directly in
/// `dir` (the statement list) are not cases.
pub fn find_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") && d != dir {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Loads every case under `dir`; ids must be unique.
pub fn load_dir(dir: &Path) -> std::result::Result<Vec<Case>, Vec<SpecError>> {
    let mut cases: Vec<Case> = Vec::new();
    let mut errors = misplaced(dir);
    for path in find_files(dir) {
        match load(&path) {
            Ok(case) => match cases.iter().find(|c| c.id == case.id) {
                Some(other) => errors.push(SpecError {
                    path: path.clone(),
                    line: 1,
                    column: 1,
                    message: format!("id `{}` is also used by {}", case.id, other.path.display()),
                }),
                None => cases.push(case),
            },
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

/// The JSON Schema of the case format.
pub fn schema() -> String {
    let schema = schemars::schema_for!(CaseFile);
    serde_json::to_string_pretty(&schema).expect("schema serialises")
}

/// The file, to turn spans into line and column.
#[derive(Clone, Copy)]
struct Place<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Place<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> SpecError {
        let (line, column) = self.line_col(span.start);
        SpecError {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }
}

type Result<T> = std::result::Result<T, SpecError>;

struct Loader<'a> {
    place: Place<'a>,
    /// The id must be the file's path (`<theme>/<name>`).
    id_from_path: bool,
    /// Connections opened so far.
    conns: BTreeSet<String>,
    /// Requests named so far.
    requests: BTreeSet<String>,
    /// Loads, named in the requests' namespace.
    loads: BTreeSet<String>,
    /// Requests sent so far per connection (for default names).
    sent_on: BTreeMap<String, u32>,
    /// The case serves HTTPS (`[server] tls = true`).
    tls: bool,
}

impl Loader<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> SpecError {
        self.place.error(span, message)
    }

    fn case(&mut self, file: CaseFile) -> Result<Case> {
        let id = file.id.get_ref();
        if id.trim().is_empty() || id.contains(char::is_whitespace) {
            return Err(self.err(
                file.id.span(),
                "`id` must be a non-empty word like `crash/segv-isolation`",
            ));
        }
        if self.id_from_path {
            let path = self.place.path;
            if let Some(want) = id_of_path(path).filter(|want| want != id) {
                return Err(self.err(
                    file.id.span(),
                    format!(
                        "id `{id}` does not match the file's path {}: there its id is `{want}` \
                         (a case's id is <theme>/<name>, its folder and its file name)",
                        path.display()
                    ),
                ));
            }
        }
        let mut checks = Vec::new();
        for c in &file.checks {
            if statement(c.get_ref()).is_none() {
                return Err(self.err(
                    c.span(),
                    format!(
                        "unknown statement `{}` (the statements are listed in specs/statements.toml: {})",
                        c.get_ref(),
                        super::statements()
                            .iter()
                            .map(|s| s.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            checks.push(c.get_ref().clone());
        }
        let mpms = file.mpms.clone().unwrap_or_else(|| Mpm::ALL.to_vec());
        let server = self.server(&file, &mpms)?;
        self.tls = server.tls;
        let mut steps = Vec::new();
        for spec in &file.steps {
            steps.extend(self.step(spec)?);
        }
        let mut expect = BTreeMap::new();
        for (key, e) in &file.expect {
            let Some(section) = Section::parse(key.get_ref()) else {
                return Err(self.err(
                    key.span(),
                    format!(
                        "unknown expectation section `{}` (use all, prefork, worker, event, \
                         reference or reference-<mpm>)",
                        key.get_ref()
                    ),
                ));
            };
            let e_typed = self.expectations(e)?;
            self.sent_where_expected(&steps, section, &mpms, &file, e)?;
            expect.insert(section, e_typed);
        }
        Ok(Case {
            id: id.clone(),
            title: file.title,
            checks,
            tags: file.tags,
            mpms,
            targets: file.targets.clone().unwrap_or_else(|| Target::ALL.to_vec()),
            path: self.place.path.to_path_buf(),
            server,
            steps,
            expect,
        })
    }

    /// Every request an expectation section names is sent under each MPM (and on each target)
    /// the section applies to: else the run would wait for it in vain.
    fn sent_where_expected(
        &self,
        steps: &[Step],
        section: Section,
        mpms: &[Mpm],
        file: &CaseFile,
        e: &ExpectFile,
    ) -> Result<()> {
        let targets = file.targets.clone().unwrap_or_else(|| Target::ALL.to_vec());
        let (under, on): (Vec<Mpm>, Vec<Target>) = match section {
            Section::All => (mpms.to_vec(), targets),
            Section::Mpm(m) => (vec![m], targets),
            Section::Reference => (mpms.to_vec(), vec![Target::Reference]),
            Section::ReferenceMpm(m) => (vec![m], vec![Target::Reference]),
        };
        for name in e.requests.keys().chain(e.memory.keys()) {
            // Where some step sends it.
            let sent_under: Vec<(Mpm, Target)> = Mpm::ALL
                .iter()
                .flat_map(|m| Target::ALL.iter().map(move |t| (*m, *t)))
                .filter(|(m, t)| {
                    steps.iter().any(|s| {
                        s.runs(*m, *t) && s.action.sends().contains(&name.get_ref().as_str())
                    })
                })
                .collect();
            let missing = under
                .iter()
                .flat_map(|m| on.iter().map(move |t| (*m, *t)))
                .find(|mt| !sent_under.contains(mt));
            if let Some((mpm, target)) = missing {
                let shown: Vec<String> = sent_under
                    .iter()
                    .map(|(m, t)| format!("{m} on {t}"))
                    .collect();
                return Err(self.err(
                    name.span(),
                    format!(
                        "`{}` is expected under {mpm} on {target}, but no step that runs \
                         there sends it (it is sent under {}): move the expectation to \
                         the section of an MPM that sends it, or send it there",
                        name.get_ref(),
                        if shown.is_empty() {
                            "none".to_string()
                        } else {
                            shown.join(", ")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }

    fn server(&self, file: &CaseFile, mpms: &[Mpm]) -> Result<ServerSettings> {
        let s = &file.server;
        let layers: [&Directives; 6] = [
            &s.all,
            &s.prefork,
            &s.threaded,
            &s.worker,
            &s.event,
            &s.apache,
        ];
        for (name, _) in layers.iter().flat_map(|l| l.iter()) {
            let n = name.get_ref();
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(self.err(name.span(), format!("`{n}` is not a directive name")));
            }
            if n.len() >= 3 && n[..3].eq_ignore_ascii_case("ssl") {
                return Err(self.err(
                    name.span(),
                    format!(
                        "`{n}`: mod_ssl's directives are the harness's to write, with a \
                         certificate made for the run; say `tls = true`"
                    ),
                ));
            }
        }
        let plain = |d: &Directives| -> BTreeMap<String, String> {
            d.iter()
                .map(|(k, v)| (k.get_ref().clone(), v.get_ref().0.clone()))
                .collect()
        };
        let settings = ServerSettings {
            faults: s.faults,
            tls: s.tls,
            all: plain(&s.all),
            prefork: plain(&s.prefork),
            threaded: plain(&s.threaded),
            worker: plain(&s.worker),
            event: plain(&s.event),
            apache: plain(&s.apache),
        };
        for mpm in mpms {
            let sets: Vec<String> = settings
                .for_mpm(*mpm)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if let Err(e) = refhttpd::Config::load(*mpm, None, &sets, s.faults) {
                let message = e.to_string();
                let message = message.trim_start_matches("--set: ");
                let directive = message.split(':').next().unwrap_or("");
                // Where the MPM's value comes from: its last layer that sets the directive —
                // the name when the directive itself is wrong, else the value.
                let own: &[&Directives] = match mpm {
                    Mpm::Prefork => &[&s.all, &s.prefork],
                    Mpm::Worker => &[&s.all, &s.threaded, &s.worker],
                    Mpm::Event => &[&s.all, &s.threaded, &s.event],
                };
                let name_is_wrong =
                    message.contains("unknown directive") || message.contains("not a directive");
                let span = own
                    .iter()
                    .rev()
                    .find_map(|l| l.iter().find(|(k, _)| k.get_ref() == directive))
                    .map(|(k, v)| if name_is_wrong { k.span() } else { v.span() })
                    .unwrap_or(0..0);
                return Err(self.err(span, format!("server setting for {mpm}: {message}")));
            }
        }
        Ok(settings)
    }

    /// One step as written: one step, or two for a `request` (its send, then its await; three
    /// with `new_connection`), or one per set of MPMs for a `wait` or `check` with `under`.
    fn step(&mut self, spanned: &Spanned<StepFile>) -> Result<Vec<Step>> {
        let span = spanned.span();
        let s = spanned.get_ref();
        let action = s.action().map_err(|given| {
            self.err(
                span.clone(),
                format!(
                    "a step needs exactly one action ({}), found {}",
                    keys(&ActionKey::ALL, ", "),
                    if given.is_empty() {
                        "none".to_string()
                    } else {
                        keys(&given, " and ")
                    }
                ),
            )
        })?;
        if let Some(option) = s.stray_option(action.key()) {
            return Err(self.err(
                span,
                format!(
                    "`{}` does nothing in a `{}` step (it belongs to {})",
                    option.name,
                    action.key(),
                    keys(option.takers, ", ")
                ),
            ));
        }
        let within = s.within.as_ref().map_or(DEFAULT_WITHIN, |t| t.0 .0);
        let line = self.place.line_col(span.start).0;
        let at_line = |action| Step {
            line,
            only: s.only.clone(),
            targets: s.targets.clone(),
            action,
        };
        if s.rcvbuf.is_some_and(|b| b < 256) {
            return Err(self.err(span, "`rcvbuf` below 256 bytes: the kernel rounds it up"));
        }
        let action = match action {
            StepAction::Open(names) if s.on.is_some() => {
                self.warm(names.get_ref(), names.span(), s, within)?
            }
            StepAction::Open(names) => Action::Open {
                names: self.open(names.get_ref(), names.span(), s.count)?,
                rcvbuf: s.rcvbuf,
            },
            StepAction::Warm(names) => self.warm(names.get_ref(), names.span(), s, within)?,
            StepAction::Send(conn) => self.send(s, conn)?.0,
            StepAction::Request(conn) => {
                if s.rcvbuf.is_some() && !s.new_connection {
                    return Err(self.err(
                        span,
                        "`rcvbuf` on a `request` needs `new_connection = true`: a receive \
                         buffer is set before the connection opens",
                    ));
                }
                let opened = if s.new_connection {
                    let names = NameList(vec![conn.get_ref().clone()]);
                    Some(Action::Open {
                        names: self.open(&names, conn.span(), None)?,
                        rcvbuf: s.rcvbuf,
                    })
                } else {
                    None
                };
                let (send, name) = self.send(s, conn)?;
                let wait = self.await_action(vec![name], s, within, span)?;
                return Ok(opened
                    .into_iter()
                    .chain([send, wait])
                    .map(at_line)
                    .collect());
            }
            StepAction::Pipeline(conn) => {
                let conn = self.conn(conn)?;
                let paths = s
                    .paths
                    .as_ref()
                    .ok_or_else(|| self.err(span.clone(), "`pipeline` needs `paths`"))?;
                if paths.get_ref().is_empty() {
                    return Err(self.err(paths.span(), "`paths` is empty"));
                }
                for p in paths.get_ref() {
                    if !p.starts_with('/') {
                        return Err(
                            self.err(paths.span(), format!("path `{p}` must start with `/`"))
                        );
                    }
                }
                let mut requests = Vec::new();
                for (i, p) in paths.get_ref().iter().enumerate() {
                    let name = match (&s.as_, i) {
                        (Some(n), 0) => self.fresh_name(&conn, n.get_ref().clone(), n.span())?,
                        (Some(n), i) => {
                            self.fresh_name(&conn, format!("{}#{}", n.get_ref(), i + 1), n.span())?
                        }
                        (None, _) => self.default_name(&conn, span.clone())?,
                    };
                    requests.push((name, p.clone()));
                }
                Action::Pipeline { conn, requests }
            }
            StepAction::SlowHead(conn) => {
                let conn = self.conn(conn)?;
                let name = self.name(&conn, s.as_.as_ref(), span.clone())?;
                Action::SlowHead {
                    conn,
                    name,
                    interval: drip_interval(s),
                }
            }
            StepAction::SlowBody(conn) => {
                let conn = self.conn(conn)?;
                let name = self.name(&conn, s.as_.as_ref(), span.clone())?;
                let length = s
                    .length
                    .filter(|n| *n > 0)
                    .ok_or_else(|| self.err(span.clone(), "`slow_body` needs `length` (≥ 1)"))?;
                Action::SlowBody {
                    conn,
                    name,
                    interval: drip_interval(s),
                    length,
                }
            }
            StepAction::SlowRead(conn) => {
                let conn = self.conn(conn)?;
                let path = s
                    .path
                    .as_ref()
                    .ok_or_else(|| self.err(span.clone(), "`slow_read` needs `path`"))?;
                let path = self.path(path)?;
                let name = self.name(&conn, s.as_.as_ref(), span.clone())?;
                Action::SlowRead {
                    conn,
                    name,
                    path,
                    rate: s.rate.unwrap_or(1024).max(1),
                }
            }
            StepAction::Reset(names) => Action::Reset(self.conns(names)?),
            StepAction::StallHandshake(_) if !self.tls => return Err(self.err(
                span,
                "`stall_handshake` begins a TLS handshake: the case needs `[server] tls = true`",
            )),
            StepAction::StallHandshake(names) => Action::StallHandshake {
                names: self.open(names.get_ref(), names.span(), None)?,
                bytes: s.bytes,
            },
            StepAction::HalfClose(names) => Action::HalfClose(self.conns(names)?),
            StepAction::Close(names) => Action::Close(self.conns(names)?),
            StepAction::Await(names) => {
                for r in &names.get_ref().0 {
                    self.known_request(r, names.span(), "`await`")?;
                }
                self.await_action(names.get_ref().0.clone(), s, within, span)?
            }
            StepAction::Wait(own) => {
                return self
                    .condition_steps(s, own, line, |condition| Action::Wait { condition, within })
            }
            StepAction::Check(own) => return self.condition_steps(s, own, line, Action::Check),
            StepAction::Signal(signal) => Action::Signal(signal),
            StepAction::KillChildOf(r) => {
                self.known_request(r.get_ref(), r.span(), "`kill_child_of`")?;
                self.not_a_load(r, "`kill_child_of` needs one request's child")?;
                Action::KillChildOf {
                    request: r.get_ref().clone(),
                    signal: s.with.as_ref().map_or(
                        nix::sys::signal::Signal::SIGKILL,
                        |Text(SignalName(sig))| *sig,
                    ),
                }
            }
            StepAction::Sleep(duration) => {
                let reason = s
                    .reason
                    .clone()
                    .filter(|r| !r.trim().is_empty())
                    .ok_or_else(|| {
                        self.err(
                            span.clone(),
                            "a fixed `sleep` needs a `reason`: why is there nothing to wait for?",
                        )
                    })?;
                Action::Sleep { duration, reason }
            }
            StepAction::Status(keys) => Action::Status(self.status(keys)?),
            StepAction::Load(name) => Action::Load(self.load_step(name, s, span.clone())?),
        };
        Ok(vec![at_line(action)])
    }

    /// A `wait` or `check` on `own`, the step's condition. With `under`, a step for each set of
    /// MPMs that shares a condition, each running only under those.
    fn condition_steps(
        &self,
        s: &StepFile,
        own: &Spanned<ConditionFile>,
        line: usize,
        action: impl Fn(Condition) -> Action,
    ) -> Result<Vec<Step>> {
        let Some(under) = &s.under else {
            return Ok(vec![Step {
                line,
                only: s.only.clone(),
                targets: s.targets.clone(),
                action: action(self.condition(own)?),
            }]);
        };
        let mut by_key = BTreeMap::new();
        for (key, c) in under {
            // (A dotted key, `under.event`, has no span of its own: the condition's is near.)
            let k: UnderKey = key.parse().map_err(|e| self.err(c.span(), e))?;
            by_key.insert(k, c);
        }
        let mpms = s.only.clone().unwrap_or_else(|| Mpm::ALL.to_vec());
        // Each MPM's condition: its own key, else `threaded` (worker, event), else the step's.
        let mut groups: Vec<(Vec<Mpm>, &Spanned<ConditionFile>)> = Vec::new();
        for mpm in mpms {
            let key = match mpm {
                Mpm::Prefork => UnderKey::Prefork,
                Mpm::Worker => UnderKey::Worker,
                Mpm::Event => UnderKey::Event,
            };
            let threaded = (mpm != Mpm::Prefork)
                .then(|| by_key.get(&UnderKey::Threaded).copied())
                .flatten();
            let c = by_key.get(&key).copied().or(threaded).unwrap_or(own);
            match groups.iter_mut().find(|(_, g)| std::ptr::eq(*g, c)) {
                Some((m, _)) => m.push(mpm),
                None => groups.push((vec![mpm], c)),
            }
        }
        groups
            .into_iter()
            .map(|(only, c)| {
                Ok(Step {
                    line,
                    only: Some(only),
                    targets: s.targets.clone(),
                    action: action(self.condition(c)?),
                })
            })
            .collect()
    }

    /// Waiting for `requests` (an `await`, or a `request`'s second half): `within`, or
    /// `timeout` after which the client gives up.
    fn await_action(
        &self,
        requests: Vec<String>,
        s: &StepFile,
        within: Duration,
        span: Range<usize>,
    ) -> Result<Action> {
        if s.within.is_some() && s.timeout.is_some() {
            return Err(self.err(
                span,
                "an `await` (or a `request`) takes `within` (the scenario stops there when it passes) \
                 or `timeout` (the client gives up and the scenario goes on), not both",
            ));
        }
        let give_up = s.timeout.as_ref().map(|t| t.0 .0);
        if give_up.is_some_and(|t| t.is_zero()) {
            return Err(self.err(span, "an `await`'s `timeout` must be above 0"));
        }
        Ok(Action::Await {
            requests,
            within: give_up.unwrap_or(within),
            give_up: give_up.is_some(),
        })
    }

    /// A `warm` step (or an `open` with `on`): connections opened and served one request each,
    /// named `warm-<connection>`.
    fn warm(
        &mut self,
        names: &NameList,
        span: Range<usize>,
        s: &StepFile,
        within: Duration,
    ) -> Result<Action> {
        let on = match &s.on {
            None => None,
            Some(p) => Some(self.placement(p)?),
        };
        let opened = self.open(names, span.clone(), s.count)?;
        let mut conns = Vec::new();
        for conn in opened {
            let name = warm_request_name(&conn);
            let name = self.fresh_name(&conn, name, span.clone())?;
            conns.push((conn, name));
        }
        Ok(Action::Warm {
            conns,
            rcvbuf: s.rcvbuf,
            on,
            within,
        })
    }

    fn placement(&self, p: &Spanned<PlacementFile>) -> Result<Placement> {
        let (r, key, placement): (_, _, fn(String) -> Placement) =
            match (&p.get_ref().same_child_as, &p.get_ref().other_child_than) {
                (Some(r), None) => (r, "`same_child_as`", Placement::SameChildAs),
                (None, Some(r)) => (r, "`other_child_than`", Placement::OtherChildThan),
                _ => {
                    return Err(self.err(
                        p.span(),
                        "`on` takes one of `same_child_as = \"request\"` or \
                         `other_child_than = \"request\"`",
                    ))
                }
            };
        self.known_request(r.get_ref(), r.span(), key)?;
        self.not_a_load(r, "a placement needs one request's child")?;
        Ok(placement(r.get_ref().clone()))
    }

    fn status(&self, keys: &Spanned<StatusKeys>) -> Result<Vec<(String, StatusExpect)>> {
        if keys.get_ref().is_empty() {
            return Err(self.err(keys.span(), "a `status` step needs at least one key"));
        }
        let mut out = Vec::new();
        for (key, value) in keys.get_ref() {
            if !STATUS_KEYS.contains(&key.get_ref().as_str()) {
                return Err(self.err(
                    key.span(),
                    format!(
                        "`{}` is not a server-status?auto key (use {})",
                        key.get_ref(),
                        STATUS_KEYS.join(", ")
                    ),
                ));
            }
            let expect = match value {
                StatusValue::Count(c) => StatusExpect::Count(*c),
                StatusValue::Text(t) if t == "*" => StatusExpect::Present,
                StatusValue::Text(t) => StatusExpect::Value(t.clone()),
            };
            out.push((key.get_ref().clone(), expect));
        }
        Ok(out)
    }

    fn open(
        &mut self,
        names: &NameList,
        span: Range<usize>,
        count: Option<u32>,
    ) -> Result<Vec<String>> {
        let count = count.unwrap_or(1);
        if count == 0 {
            return Err(self.err(span, "`count = 0` opens nothing"));
        }
        let mut opened = Vec::new();
        for name in &names.0 {
            self.word(name, span.clone(), "a connection name")?;
            if count == 1 {
                opened.push(name.clone());
            } else {
                opened.extend((1..=count).map(|i| format!("{name}.{i}")));
            }
        }
        for name in &opened {
            if !self.conns.insert(name.clone()) {
                return Err(self.err(span, format!("connection `{name}` is opened twice")));
            }
        }
        Ok(opened)
    }

    /// A request on `conn_name` with `send`'s options (a `send` or a `request` step), and its
    /// name.
    fn send(&mut self, s: &StepFile, conn_name: &Spanned<String>) -> Result<(Action, String)> {
        let conn = self.conn(conn_name)?;
        let fault = match &s.fault {
            Some(f) => Some(self.request_fault(f)?),
            None => None,
        };
        let span = conn_name.span();
        if s.raw.is_some()
            && (s.path.is_some()
                || fault.is_some()
                || s.body.is_some()
                || s.method.is_some()
                || s.connection_close
                || s.connection_keep_alive
                || s.http10)
        {
            return Err(self.err(
                span,
                "`raw` replaces the whole request: no `path`, `fault`, `body`, `method`, \
                 `connection_close`, `connection_keep_alive` or `http10` with it (write them \
                 into the raw bytes)",
            ));
        }
        if s.connection_close && s.connection_keep_alive {
            return Err(self.err(
                span,
                "`connection_close` and `connection_keep_alive` contradict each other: choose one",
            ));
        }
        let request = match (&s.raw, &s.path, &fault) {
            (Some(raw), ..) => Request::Raw(raw.clone()),
            (None, Some(_), Some(_)) => {
                return Err(self.err(span, "`send` takes `path` or `fault`, not both"))
            }
            (None, path, fault) => Request::Http {
                method: s.method.clone().unwrap_or_else(|| "GET".into()),
                path: match (path, fault) {
                    (Some(p), _) => self.path(p)?,
                    (None, Some(f)) => f.request_path(),
                    (None, None) => "/".into(),
                },
                body: s.body.clone(),
                connection: match (s.connection_close, s.connection_keep_alive) {
                    (true, _) => Some(ConnectionToken::Close),
                    (false, true) => Some(ConnectionToken::KeepAlive),
                    (false, false) => None,
                },
                http10: s.http10,
            },
        };
        let name = self.name(&conn, s.as_.as_ref(), span)?;
        let send = Action::Send {
            conn,
            name: name.clone(),
            request,
            fault,
        };
        Ok((send, name))
    }

    /// A fault a request may carry: not a fault site's form (`fail:…`).
    fn request_fault(&self, f: &Spanned<Text<Fault>>) -> Result<Fault> {
        let fault = &f.get_ref().0;
        if fault.allowed_in_request() {
            Ok(fault.clone())
        } else {
            Err(self.err(
                f.span(),
                format!(
                    "`{fault}` is a fault site's form (Fault* settings under [server]), not a \
                     request fault (use {})",
                    Fault::request_forms()
                ),
            ))
        }
    }

    fn path(&self, p: &Spanned<String>) -> Result<String> {
        if p.get_ref().starts_with('/') {
            Ok(p.get_ref().clone())
        } else {
            Err(self.err(
                p.span(),
                format!("path `{}` must start with `/`", p.get_ref()),
            ))
        }
    }

    /// The name of the next request on `conn`: `as`, else the default.
    fn name(
        &mut self,
        conn: &str,
        given: Option<&Spanned<String>>,
        span: Range<usize>,
    ) -> Result<String> {
        match given {
            Some(n) => self.fresh_name(conn, n.get_ref().clone(), n.span()),
            None => self.default_name(conn, span),
        }
    }

    /// `conn` for its first request, then `conn#2`, `conn#3`, ….
    fn default_name(&mut self, conn: &str, span: Range<usize>) -> Result<String> {
        let n = self.sent_on.get(conn).copied().unwrap_or(0) + 1;
        let name = if n == 1 {
            conn.to_string()
        } else {
            format!("{conn}#{n}")
        };
        self.fresh_name(conn, name, span)
    }

    fn fresh_name(&mut self, conn: &str, name: String, span: Range<usize>) -> Result<String> {
        self.word(&name, span.clone(), "a request name")?;
        if !self.requests.insert(name.clone()) {
            return Err(self.err(span, format!("request name `{name}` is used twice")));
        }
        *self.sent_on.entry(conn.to_string()).or_default() += 1;
        Ok(name)
    }

    fn word(&self, name: &str, span: Range<usize>, what: &str) -> Result<()> {
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(self.err(span, format!("`{name}` is not {what} (a word, no spaces)")));
        }
        Ok(())
    }

    fn conn(&self, name: &Spanned<String>) -> Result<String> {
        self.open_conn(name.get_ref(), name.span())
    }

    fn open_conn(&self, name: &str, span: Range<usize>) -> Result<String> {
        if self.conns.contains(name) {
            Ok(name.to_string())
        } else {
            Err(self.err(
                span,
                format!(
                    "connection `{name}` is not opened by an earlier step (opened: {})",
                    list(&self.conns)
                ),
            ))
        }
    }

    fn conns(&self, names: &Spanned<NameList>) -> Result<Vec<String>> {
        names
            .get_ref()
            .0
            .iter()
            .map(|n| self.open_conn(n, names.span()))
            .collect()
    }

    fn known_request(&self, name: &str, span: Range<usize>, what: &str) -> Result<()> {
        if self.requests.contains(name) {
            Ok(())
        } else {
            Err(self.err(
                span,
                format!(
                    "{what} names `{name}`, which no step sends (requests: {})",
                    list(&self.requests)
                ),
            ))
        }
    }

    fn condition(&self, spanned: &Spanned<ConditionFile>) -> Result<Condition> {
        let (c, span) = (spanned.get_ref(), spanned.span());
        let quantities = [
            (Quantity::BusyWorkers, c.busy_workers),
            (Quantity::IdleWorkers, c.idle_workers),
            (Quantity::KeepaliveWorkers, c.keepalive_workers),
            (Quantity::WritingWorkers, c.writing_workers),
            (Quantity::StartingWorkers, c.starting_workers),
            (Quantity::AsyncKeepalive, c.async_keepalive),
            (Quantity::AsyncWriting, c.async_writing),
            (Quantity::AsyncClosing, c.async_closing),
            (Quantity::Processes, c.processes),
            (Quantity::Accepting, c.accepting),
            (Quantity::Threads, c.threads),
            (Quantity::PssKb, c.pss_kb),
            (Quantity::ChildExits, c.child_exits),
        ];
        let counts: Vec<(Quantity, Count)> = quantities
            .into_iter()
            .filter_map(|(q, c)| c.map(|c| (q, c)))
            .collect();
        if c.events.is_some() && c.event.is_none() {
            return Err(self.err(span, "`events` counts the kind given in `event`"));
        }
        let closed = match &c.closed {
            Some(names) => self.conns(names)?,
            None => Vec::new(),
        };
        let responding = match &c.responding {
            Some(names) => names
                .get_ref()
                .0
                .iter()
                .map(|n| {
                    self.known_request(n, names.span(), "`responding`")
                        .map(|()| n.clone())
                })
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let condition = Condition {
            counts,
            event: c
                .event
                .as_ref()
                .map(|k| (k.0 .0, c.events.unwrap_or(Count::SOME))),
            master_exited: c.master_exited,
            closed,
            responding,
        };
        if condition == Condition::default() {
            return Err(self.err(
                span,
                "an empty condition always holds; name what to wait for",
            ));
        }
        Ok(condition)
    }

    fn expectations(&self, e: &ExpectFile) -> Result<Expect> {
        let mut requests = BTreeMap::new();
        for (name, r) in &e.requests {
            self.known_request(name.get_ref(), name.span(), "an expectation")?;
            self.not_a_load(name, "its expectations go under `loads`")?;
            requests.insert(name.get_ref().clone(), self.request_expect(r)?);
        }
        let other_requests = e
            .other_requests
            .as_ref()
            .map(|r| self.request_expect(r))
            .transpose()?;
        let mut connects = BTreeMap::new();
        for (name, c) in &e.connects {
            connects.insert(name.get_ref().clone(), self.connect_expect(name, c)?);
        }
        let mut events = BTreeMap::new();
        for (kind, count) in &e.events {
            events.insert(self.event_kind(kind)?, *count);
        }
        let conditions = |list: &[Spanned<ConditionFile>]| -> Result<Vec<Condition>> {
            list.iter().map(|c| self.condition(c)).collect()
        };
        let texts = |list: &[Spanned<String>]| -> Result<Vec<String>> {
            list.iter()
                .map(|t| match t.get_ref().trim() {
                    "" => Err(self.err(t.span(), "an empty text is in every line; name the text")),
                    _ => Ok(t.get_ref().clone()),
                })
                .collect()
        };
        Ok(Expect {
            requests,
            connects,
            master_exit: e.master_exit,
            log_has: texts(&e.log_has)?,
            log_never: texts(&e.log_never)?,
            other_requests,
            crash: e.crash.as_ref().map(crash),
            events,
            seen: conditions(&e.seen)?,
            never: conditions(&e.never)?,
            loads: self.load_expectations(&e.loads)?,
            memory: self.memory_expectations(&e.memory)?,
        })
    }

    /// `memory`: each names a request a step sends (its process is the one meant), asks
    /// something, and asks for the memory back when it asks for the replacement.
    fn memory_expectations(
        &self,
        memory: &BTreeMap<Spanned<String>, MemoryExpectFile>,
    ) -> Result<BTreeMap<String, MemoryExpect>> {
        let mut out = BTreeMap::new();
        for (name, m) in memory {
            self.known_request(name.get_ref(), name.span(), "a memory expectation")?;
            self.not_a_load(
                name,
                "a memory expectation names one request, whose process it is about",
            )?;
            let size = |s: &Option<Text<Size>>| s.as_ref().map(|t| t.0 .0);
            let e = MemoryExpect {
                grew_at_least: size(&m.grew_at_least),
                grew_at_most: size(&m.grew_at_most),
                others_grew_at_most: size(&m.others_grew_at_most),
                replaced: m.replaced,
                server_grew_at_most: size(&m.server_grew_at_most),
            };
            if e == MemoryExpect::default() {
                return Err(self.err(
                    name.span(),
                    "an empty memory expectation checks nothing (give grew_at_least, \
                     grew_at_most, others_grew_at_most, replaced or server_grew_at_most)",
                ));
            }
            if let (Some(l), Some(m)) = (e.grew_at_least, e.grew_at_most) {
                if l > m {
                    return Err(self.err(
                        name.span(),
                        format!(
                            "grew_at_least {} is above grew_at_most {}: nothing can hold",
                            Size(l),
                            Size(m)
                        ),
                    ));
                }
            }
            if e.replaced == Some(true) && e.server_grew_at_most.is_none() {
                return Err(self.err(
                    name.span(),
                    "`replaced = true` says the process's memory is handed back with it: give \
                     `server_grew_at_most`, how much the server's summed PSS may exceed what it \
                     was before the request once the pool is whole again",
                ));
            }
            out.insert(name.get_ref().clone(), e);
        }
        Ok(out)
    }

    /// A `load` step.
    fn load_step(
        &mut self,
        name: &Spanned<String>,
        s: &StepFile,
        span: Range<usize>,
    ) -> Result<LoadStep> {
        self.word(name.get_ref(), name.span(), "a load name")?;
        if !self.requests.insert(name.get_ref().clone()) {
            return Err(self.err(
                name.span(),
                format!("`{}` already names a request or a load", name.get_ref()),
            ));
        }
        self.loads.insert(name.get_ref().clone());
        let connections = s.connections.unwrap_or(10);
        if !(1..=MAX_LOAD_CONNECTIONS).contains(&connections) {
            return Err(self.err(
                span,
                format!("`connections` is 1 to {MAX_LOAD_CONNECTIONS}, not {connections}"),
            ));
        }
        if s.rate == Some(0) {
            return Err(self.err(
                span,
                "`rate = 0` sends nothing; leave it out for the closed model",
            ));
        }
        let duration = s
            .duration
            .as_ref()
            .map_or(Duration::from_secs(2), |d| d.0 .0);
        if duration.is_zero() {
            return Err(self.err(span, "a load's `duration` must be above 0"));
        }
        let timeout = s.timeout.as_ref().map_or(LOAD_TIMEOUT, |d| d.0 .0);
        if timeout.is_zero() {
            return Err(self.err(span, "a load's `timeout` must be above 0"));
        }
        let mut mix = Vec::new();
        for m in s.mix.as_deref().unwrap_or_default() {
            let weight = m.weight.unwrap_or(1);
            if weight == 0 {
                return Err(self.err(span.clone(), "a mix entry's `weight` is 1 or more"));
            }
            let (path, fault) = match (&m.path, &m.fault) {
                (Some(p), None) => (self.path(p)?, None),
                (None, Some(f)) => {
                    let fault = self.request_fault(f)?;
                    (fault.request_path(), Some(fault))
                }
                _ => {
                    return Err(self.err(
                        span.clone(),
                        "a mix entry takes a `path` or a `fault` (and a `weight`)",
                    ))
                }
            };
            mix.push(LoadMix {
                path,
                fault,
                weight,
            });
        }
        if mix.is_empty() {
            mix.push(LoadMix {
                path: "/".into(),
                fault: None,
                weight: 1,
            });
        }
        Ok(LoadStep {
            name: name.get_ref().clone(),
            connections,
            rate: s.rate,
            duration,
            keepalive: s.keepalive.unwrap_or(true),
            warm: s.warms_load(),
            mix,
            timeout,
        })
    }

    /// An error when `name` is a load where one request is meant.
    fn not_a_load(&self, name: &Spanned<String>, why: &str) -> Result<()> {
        if self.loads.contains(name.get_ref()) {
            return Err(self.err(
                name.span(),
                format!("`{}` is a load, not a request: {why}", name.get_ref()),
            ));
        }
        Ok(())
    }

    fn load_expectations(
        &self,
        loads: &BTreeMap<Spanned<String>, LoadExpectFile>,
    ) -> Result<BTreeMap<String, LoadExpect>> {
        let mut out = BTreeMap::new();
        for (name, l) in loads {
            if !self.loads.contains(name.get_ref()) {
                return Err(self.err(
                    name.span(),
                    format!(
                        "`loads` names `{}`, which no `load` step drives (loads: {})",
                        name.get_ref(),
                        list(&self.loads)
                    ),
                ));
            }
            let classes = [
                (LoadClass::Failed, l.failed),
                (LoadClass::Refused, l.refused),
                (LoadClass::Reset, l.reset),
                (LoadClass::Closed, l.closed),
                (LoadClass::Timeout, l.timeout),
                (LoadClass::ServerErrors, l.server_errors),
                (LoadClass::SharedClobbered, l.shared_clobbered),
            ];
            let bound = |b: &Option<LatencyFile>| -> Result<Option<DurationBounds>> {
                let (at_least, at_most) = match b {
                    None => return Ok(None),
                    Some(LatencyFile::AtMost(d)) => (None, Some(d)),
                    Some(LatencyFile::Bounds { at_least, at_most }) => {
                        (at_least.as_ref(), at_most.as_ref())
                    }
                };
                let (at_least, at_most) =
                    self.duration_bounds(name, at_least, at_most, "a latency bound")?;
                Ok(Some(DurationBounds { at_least, at_most }))
            };
            if l.throughput.is_some_and(|t| !t.is_finite() || t < 0.0) {
                return Err(self.err(name.span(), "`throughput` is a rate of 0 or more"));
            }
            let e = LoadExpect {
                failures: classes
                    .into_iter()
                    .filter_map(|(c, l)| l.map(|l| (c, l.0)))
                    .collect(),
                p50: bound(&l.p50)?,
                p99: bound(&l.p99)?,
                max: bound(&l.max)?,
                throughput: l.throughput,
                requests: l.requests,
            };
            if e == LoadExpect::default() {
                return Err(self.err(name.span(), "an empty load expectation checks nothing"));
            }
            out.insert(name.get_ref().clone(), e);
        }
        Ok(out)
    }

    fn connect_expect(
        &self,
        name: &Spanned<String>,
        c: &ConnectExpectFile,
    ) -> Result<DurationBounds> {
        if !self.conns.contains(name.get_ref()) {
            return Err(self.err(
                name.span(),
                format!(
                    "`connects` names `{}`, which no step opens (opened: {})",
                    name.get_ref(),
                    list(&self.conns)
                ),
            ));
        }
        let (at_least, at_most) = self.duration_bounds(
            name,
            c.at_least.as_ref(),
            c.at_most.as_ref(),
            "a `connects` bound",
        )?;
        Ok(DurationBounds { at_least, at_most })
    }

    /// Duration bounds as written: at least one given, and not the wrong way round.
    fn duration_bounds(
        &self,
        at: &Spanned<String>,
        at_least: Option<&Text<Dur>>,
        at_most: Option<&Text<Dur>>,
        what: &str,
    ) -> Result<(Option<Duration>, Option<Duration>)> {
        let (at_least, at_most) = (at_least.map(|d| d.0 .0), at_most.map(|d| d.0 .0));
        match (at_least, at_most) {
            (None, None) => Err(self.err(at.span(), format!("{what} needs at_least or at_most"))),
            (Some(l), Some(m)) if l > m => Err(self.err(
                at.span(),
                format!("at_least {l:?} is above at_most {m:?}: nothing can hold"),
            )),
            bounds => Ok(bounds),
        }
    }

    fn event_kind(&self, kind: &Spanned<String>) -> Result<EventKind> {
        kind.get_ref()
            .parse::<Kind>()
            .map(|k| k.0)
            .map_err(|e| self.err(kind.span(), e))
    }

    fn request_expect(&self, r: &RequestExpectFile) -> Result<RequestExpect> {
        for other in [&r.same_child_as, &r.other_child_than]
            .into_iter()
            .flatten()
        {
            self.known_request(other.get_ref(), other.span(), "a request expectation")?;
        }
        Ok(RequestExpect {
            status: r.status,
            outcome: r.outcome,
            latency: DurationBounds {
                at_least: r.latency_at_least,
                at_most: r.latency_at_most,
            },
            same_child_as: r.same_child_as.as_ref().map(|s| s.get_ref().clone()),
            other_child_than: r.other_child_than.as_ref().map(|s| s.get_ref().clone()),
            closes: r.closes,
            bytes: r.bytes,
            body: r.body,
            shared: r.shared,
            headers: r.headers.clone(),
            reference_only: r.reference_only,
        })
    }
}

/// `slow_head` and `slow_body`: the pause between bytes (default 100 ms).
fn drip_interval(s: &StepFile) -> std::time::Duration {
    s.interval
        .as_ref()
        .map_or(std::time::Duration::from_millis(100), |t| t.0 .0)
}

fn crash(c: &CrashExpectFile) -> CrashExpect {
    CrashExpect {
        scope: c.scope.0 .0,
        recovered_within: c.recovered_within.as_ref().map(|t| t.0 .0),
        recovery_reference_only: c.recovery_reference_only,
    }
}

/// Action keys as written, joined.
fn keys(keys: &[ActionKey], separator: &str) -> String {
    keys.iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(separator)
}

fn list(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}
