//! The case file as written (TOML): what serde reads and what the JSON Schema describes.
//!
//! The first of two stages (the second is [`super::load`]): every value is read into the most
//! precise type serde can give — enums for MPMs, targets, signals, event kinds in `event`,
//! outcomes and crash scopes; parsed durations and faults — so that a misspelt word is a TOML
//! error at its own line and column, naming what would be valid. What needs the whole case to
//! check (names of connections and requests, settings, statement IDs) keeps its position
//! (`toml::Spanned`) for the second stage.
//!
//! Every type also serialises to the text it is read from — the shortest form that reads back
//! the same, leaving out a `None` and a default — so that a case made in code is written from
//! these definitions ([`super::case_text`]). A step's action key, found once, is a
//! [`StepAction`] carrying its value; [`STEP_OPTIONS`] says which options each action takes.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

use mpm_faults::{BlastRadius, Fault};
use refhttpd::{EventKind, Mpm};
use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{BodyShape, ExpectedOutcome, HeaderExpect, MasterSignal, SharedExpect, Target};
use crate::spec::condition::Count;

/// The file as written.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// Unique id, `theme/name` (the file's path under `specs/` without `.toml`).
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// One line saying what the case shows.
    pub title: String,
    /// The behaviour statements the case checks (`PF-2`, `EV-5`, …); see `specs/statements.toml`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>", skip_serializing_if = "shown")]
    pub checks: Vec<Spanned<String>>,
    /// Free tags for filtering (`crash`, `keepalive`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(skip_serializing_if = "shown")]
    pub tags: Vec<String>,
    /// The MPMs the case runs under (default: all three).
    #[serde(default)]
    #[schemars(with = "Option<Vec<MpmName>>")]
    pub mpms: Option<Vec<Mpm>>,
    /// The targets the case runs against (default: all): for a case no other target can serve
    /// at all (refhttpd's fault sites); say why in a comment.
    #[serde(default)]
    pub targets: Option<Vec<Target>>,
    /// Server settings, Apache directive names.
    #[serde(default, skip_serializing_if = "ServerFile::is_empty")]
    #[schemars(skip_serializing_if = "shown")]
    pub server: ServerFile,
    /// The scenario, in order.
    #[serde(rename = "step", default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<StepFile>", skip_serializing_if = "shown")]
    pub steps: Vec<Spanned<StepFile>>,
    /// Expectations: `all` applies to every MPM, then `prefork`, `worker`, `event` add to it.
    /// `reference` and `reference-<mpm>` hold expectations judged on the reference server only
    /// (Apache cannot meet them by design); elsewhere they are reported as not judged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, ExpectFile>", skip_serializing_if = "shown")]
    pub expect: BTreeMap<Spanned<String>, ExpectFile>,
}

/// The MPM names (for the schema).
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum MpmName {
    Prefork,
    Worker,
    Event,
}

/// Directives by name.
pub type Directives = BTreeMap<Spanned<String>, Spanned<Value>>;

/// How the server is started for the case.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Start the server with faults enabled (`/fault/...` paths, Fault* directives). Without
    /// it a `/fault/...` request answers 404 on every target.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(skip_serializing_if = "shown")]
    pub faults: bool,
    /// Serve HTTPS: the harness makes a self-signed certificate for the run, configures the
    /// server with it (refhttpd's and Apache's mod_ssl directives, which a case does not
    /// write) and its clients, load included, trust exactly it.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(skip_serializing_if = "shown")]
    pub tls: bool,
    /// Directives for every MPM.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, Value>", skip_serializing_if = "shown")]
    pub all: Directives,
    /// Directives for prefork only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, Value>", skip_serializing_if = "shown")]
    pub prefork: Directives,
    /// Directives for worker and event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, Value>", skip_serializing_if = "shown")]
    pub threaded: Directives,
    /// Directives for worker only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, Value>", skip_serializing_if = "shown")]
    pub worker: Directives,
    /// Directives for event only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, Value>", skip_serializing_if = "shown")]
    pub event: Directives,
    /// Directives written into Apache's httpd.conf only, for every MPM (Apache settings with no
    /// reference equivalent, e.g. `EnableSendfile = "On"`); not validated here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, Value>", skip_serializing_if = "shown")]
    pub apache: Directives,
}

impl ServerFile {
    /// Nothing set: the server as it starts by default.
    pub fn is_empty(&self) -> bool {
        !self.faults
            && [
                &self.all,
                &self.prefork,
                &self.threaded,
                &self.worker,
                &self.event,
                &self.apache,
            ]
            .iter()
            .all(|d| d.is_empty())
    }
}

/// A flag left out when false (its default).
fn is_false(b: &bool) -> bool {
    !*b
}

/// For the schema: a field written only when it is not its default still shows the default
/// (schemars leaves out the default of a field that `skip_serializing_if` leaves out).
fn shown<T>(_: &T) -> bool {
    false
}

/// A directive value as Apache would read it: a TOML string, integer, float or boolean (On/Off).
#[derive(Debug, Clone, PartialEq)]
pub struct Value(pub String);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a directive value: a string, a number or a boolean")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
                Ok(Value(if b { "On" } else { "Off" }.into()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
                Ok(Value(n.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
                Ok(Value(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Value, E> {
                Ok(Value(x.to_string()))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
                Ok(Value(s.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Written as an integer when it is one, else as text (a boolean reads back as its `On`/`Off`).
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.parse::<i64>() {
            Ok(n) if n.to_string() == self.0 => s.serialize_i64(n),
            _ => s.serialize_str(&self.0),
        }
    }
}

impl JsonSchema for Value {
    fn schema_name() -> String {
        "DirectiveValue".into()
    }
    fn json_schema(g: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        #[derive(JsonSchema)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum DirectiveValue {
            Bool(bool),
            Int(i64),
            Float(f64),
            Text(String),
        }
        DirectiveValue::json_schema(g)
    }
}

/// A value written as text and parsed with `T::from_str`; a parse error is a TOML error at the
/// value's place.
#[derive(Debug, Clone, PartialEq)]
pub struct Text<T>(pub T);

impl<'de, T> Deserialize<'de> for Text<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text<T>, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T> Visitor<'_> for V<T>
        where
            T: FromStr,
            T::Err: fmt::Display,
        {
            type Value = Text<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<T>, E> {
                s.parse().map(Text).map_err(E::custom)
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// Written as its text, which `T::from_str` reads back.
impl<T: fmt::Display> Serialize for Text<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<T> JsonSchema for Text<T> {
    fn schema_name() -> String {
        "String".into()
    }
    fn json_schema(g: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        String::json_schema(g)
    }
}

/// A duration in Apache's forms (`5` seconds, `200ms`, `1.5s`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Dur, String> {
        mpm_faults::duration::parse(s).map(Dur)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mpm_faults::duration::format(self.0))
    }
}

/// A size in bytes: `4096`, `64K`, `60M`, `1G` (binary multiples, as `leak:SIZE` reads them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Size, String> {
        mpm_faults::size::parse(s).map(Size)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mpm_faults::size::format(self.0))
    }
}

/// An event kind by its log name, with one message for every place a case names one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kind(pub EventKind);

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .map(Kind)
            .ok_or_else(|| {
                format!(
                    "unknown event kind `{s}` (use {})",
                    EventKind::ALL.map(|k| k.as_str()).join(", ")
                )
            })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// A signal name for `kill_child_of … with` (`SIGKILL`, `SIGSEGV`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalName(pub nix::sys::signal::Signal);

impl FromStr for SignalName {
    type Err = String;
    fn from_str(s: &str) -> Result<SignalName, String> {
        s.parse()
            .map(SignalName)
            .map_err(|_| format!("unknown signal `{s}` (use e.g. SIGKILL, SIGSEGV, SIGTERM)"))
    }
}

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// A crash scope: `connection` or `process`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scope(pub BlastRadius);

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Scope, String> {
        match s.parse::<BlastRadius>() {
            Ok(b @ (BlastRadius::Connection | BlastRadius::Process)) => Ok(Scope(b)),
            _ => Err(format!(
                "unknown crash scope `{s}` (use connection: only the crashing request fails, or \
                 process: every connection of the crashed child fails)"
            )),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One name or a list of names.
#[derive(Debug, Clone, PartialEq)]
pub struct NameList(pub Vec<String>);

impl<'de> Deserialize<'de> for NameList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NameList, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NameList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name or a list of names")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<NameList, E> {
                Ok(NameList(vec![s.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NameList, A::Error> {
                let mut names = Vec::new();
                while let Some(n) = seq.next_element::<String>()? {
                    names.push(n);
                }
                if names.is_empty() {
                    return Err(de::Error::custom("an empty list names nothing"));
                }
                Ok(NameList(names))
            }
        }
        d.deserialize_any(V)
    }
}

/// Written as a list, whatever its length.
impl Serialize for NameList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl JsonSchema for NameList {
    fn schema_name() -> String {
        "Names".into()
    }
    fn json_schema(g: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        #[derive(JsonSchema)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Names {
            One(String),
            Many(Vec<String>),
        }
        Names::json_schema(g)
    }
}

/// A count as written: a number ≥ 0, or `{ at_least = N, at_most = M }`.
impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count: a number ≥ 0 or { at_least = N, at_most = M }")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Count, E> {
                Ok(Count::Exactly(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Count, E> {
                u64::try_from(n).map(Count::Exactly).map_err(|_| {
                    E::custom(format!(
                        "a count cannot be negative ({n}); write a number ≥ 0 or \
                         {{ at_least = N, at_most = M }}"
                    ))
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Count, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Bounds {
                    at_least: Option<u64>,
                    at_most: Option<u64>,
                }
                let b = Bounds::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if b.at_least.is_none() && b.at_most.is_none() {
                    return Err(de::Error::custom(
                        "a range needs `at_least`, `at_most` or both",
                    ));
                }
                if let (Some(l), Some(m)) = (b.at_least, b.at_most) {
                    if l > m {
                        return Err(de::Error::custom(format!(
                            "at_least {l} is above at_most {m}: nothing can hold"
                        )));
                    }
                }
                Ok(Count::Range {
                    at_least: b.at_least,
                    at_most: b.at_most,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A count as written: the number, or the table of its bounds.
impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Count::Exactly(n) => s.serialize_u64(n),
            Count::Range { at_least, at_most } => bounds(s, at_least, at_most),
        }
    }
}

/// `{ at_least = …, at_most = … }`, with the bounds given.
fn bounds<S: Serializer, T: Serialize>(
    s: S,
    at_least: Option<T>,
    at_most: Option<T>,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(None)?;
    if let Some(l) = at_least {
        map.serialize_entry("at_least", &l)?;
    }
    if let Some(m) = at_most {
        map.serialize_entry("at_most", &m)?;
    }
    map.end()
}

impl JsonSchema for Count {
    fn schema_name() -> String {
        "Count".into()
    }
    fn json_schema(g: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        #[derive(JsonSchema)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Count {
            Exactly(u64),
            Range {
                at_least: Option<u64>,
                at_most: Option<u64>,
            },
        }
        Count::json_schema(g)
    }
}

/// A `status` step's keys and what each must be.
pub type StatusKeys = BTreeMap<Spanned<String>, StatusValue>;

/// What a `status` step expects of one key.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusValue {
    Count(Count),
    Text(String),
}

impl<'de> Deserialize<'de> for StatusValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StatusValue, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count (1, { at_least = 1 }), a value (\"event\") or \"*\"")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<StatusValue, E> {
                Ok(StatusValue::Count(Count::Exactly(n)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<StatusValue, E> {
                u64::try_from(n)
                    .map(|n| StatusValue::Count(Count::Exactly(n)))
                    .map_err(|_| E::custom(format!("a count cannot be negative ({n})")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StatusValue, E> {
                Ok(StatusValue::Text(s.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StatusValue, A::Error> {
                Count::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(StatusValue::Count)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for StatusValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StatusValue::Count(c) => c.serialize(s),
            StatusValue::Text(t) => s.serialize_str(t),
        }
    }
}

impl JsonSchema for StatusValue {
    fn schema_name() -> String {
        "StatusValue".into()
    }
    fn json_schema(g: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        #[derive(JsonSchema)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum StatusValue {
            Count(Count),
            Text(String),
        }
        StatusValue::json_schema(g)
    }
}

/// One step: exactly one action key (`open`, `send`, `wait`, …) plus its options.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepFile {
    /// Open connections with these names.
    #[schemars(with = "Option<NameList>")]
    pub open: Option<Spanned<NameList>>,
    /// Send a request on the named connection (`path`, `fault` or `raw`).
    #[schemars(with = "Option<String>")]
    pub send: Option<Spanned<String>>,
    /// Send a request on the named connection and wait for its outcome, in one step: `send`'s
    /// options (`path`, `fault`, `raw`, …, `as`) with `await`'s (`within`, or `timeout`).
    #[schemars(with = "Option<String>")]
    pub request: Option<Spanned<String>>,
    /// Send several requests back to back in one write on the named connection (`paths`).
    #[schemars(with = "Option<String>")]
    pub pipeline: Option<Spanned<String>>,
    /// Client fault: send a request head slowly on the named connection (slowloris), one byte per
    /// `interval` (default 100ms) for ever or until the server closes.
    #[schemars(with = "Option<String>")]
    pub slow_head: Option<Spanned<String>>,
    /// Client fault: send `POST /` with a body of `length` bytes on the named connection, the
    /// head at once and the body one byte per `interval` (default 100ms); the response comes
    /// once the body is complete, or the server cuts it (RequestReadTimeout's body stage).
    #[schemars(with = "Option<String>")]
    pub slow_body: Option<Spanned<String>>,
    /// Client fault: request `path` on the named connection and read the response slowly
    /// (`rate` bytes per second, default 1024).
    #[schemars(with = "Option<String>")]
    pub slow_read: Option<Spanned<String>>,
    /// Client fault (TLS cases): open the named connections and begin a TLS handshake on each
    /// that stops half-way — the first `bytes` of a ClientHello (default: half of it), then
    /// nothing (TL-2). The server's end of each is recorded (`wait = { closed = [...] }`).
    #[schemars(with = "Option<NameList>")]
    pub stall_handshake: Option<Spanned<NameList>>,
    /// Client fault: reset the named connections (RST).
    #[schemars(with = "Option<NameList>")]
    pub reset: Option<Spanned<NameList>>,
    /// Client fault: close the writing side of the named connections.
    #[schemars(with = "Option<NameList>")]
    pub half_close: Option<Spanned<NameList>>,
    /// Close the named connections.
    #[schemars(with = "Option<NameList>")]
    pub close: Option<Spanned<NameList>>,
    /// Wait until every named request has an outcome.
    #[serde(rename = "await")]
    #[schemars(with = "Option<NameList>")]
    pub await_: Option<Spanned<NameList>>,
    /// Wait until a condition holds (decided only on observations made after the step began).
    #[schemars(with = "Option<ConditionFile>")]
    pub wait: Option<Spanned<ConditionFile>>,
    /// Check a condition now, on fresh observations (a verdict item; the scenario goes on).
    #[schemars(with = "Option<ConditionFile>")]
    pub check: Option<Spanned<ConditionFile>>,
    /// Signal the master: `graceful` (USR1), `restart` (HUP), `stop` (TERM), `graceful-stop`
    /// (WINCH).
    pub signal: Option<MasterSignal>,
    /// Kill the child that served this request, with `with` (default SIGKILL).
    #[schemars(with = "Option<String>")]
    pub kill_child_of: Option<Spanned<String>>,
    /// A fixed sleep: only where nothing observable exists; `reason` says why.
    pub sleep: Option<Text<Dur>>,
    /// Fetch `/server-status?auto` on a fresh connection and check its keys now (a verdict
    /// item): a number or range for a numeric key, a string for an exact value, `"*"` for a
    /// key that must be present (SB-2).
    #[schemars(with = "Option<BTreeMap<String, StatusValue>>")]
    pub status: Option<Spanned<StatusKeys>>,
    /// Drive load in the background under this name while the next steps go on (`await` it):
    /// `connections`, `duration`, `rate` (requests/s over all connections; without it each
    /// connection sends its next request when the last is answered), `keepalive`, `mix`,
    /// `warm`, `timeout`.
    #[schemars(with = "Option<String>")]
    pub load: Option<Spanned<String>>,

    /// `send`/`slow_read`: the request path.
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// `send`: a server fault from the mpm-faults vocabulary (the path becomes `/fault/<fault>`).
    #[schemars(with = "Option<String>")]
    pub fault: Option<Spanned<Text<Fault>>>,
    /// `send`: exact bytes to send instead of a well-formed request (TOML escapes: `\r\n`),
    /// for malformed requests (HT-1).
    pub raw: Option<String>,
    /// `pipeline`: the paths, one request each (named `as`, `as#2`, …).
    #[schemars(with = "Option<Vec<String>>")]
    pub paths: Option<Spanned<Vec<String>>>,
    /// The request's name (default: the connection's name for its first request, then
    /// `conn#2`, `conn#3`, …; a pipeline's requests are `name`, `name#2`, …).
    #[serde(rename = "as")]
    #[schemars(with = "Option<String>")]
    pub as_: Option<Spanned<String>>,
    /// `send`: method (default GET).
    pub method: Option<String>,
    /// `send`: a request body (sent with Content-Length).
    pub body: Option<String>,
    /// `send`: ask the server to close after the response.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(skip_serializing_if = "shown")]
    pub connection_close: bool,
    /// `send`: send `Connection: keep-alive` (HTTP/1.0's way to keep the connection; a
    /// kept-alive response then carries a `Keep-Alive` header).
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(skip_serializing_if = "shown")]
    pub connection_keep_alive: bool,
    /// `send`: speak HTTP/1.0 (no keep-alive unless asked).
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(skip_serializing_if = "shown")]
    pub http10: bool,
    /// `request`: on a new connection of that name, opened first (an `open` and the request
    /// in one step).
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(skip_serializing_if = "shown")]
    pub new_connection: bool,
    /// `open`: how many connections per name (named `name.1` … `name.N` when above 1).
    pub count: Option<u32>,
    /// `open`: the client's receive buffer in bytes, set before connecting (a reader whose
    /// window the server really meets; the kernel doubles it for bookkeeping).
    pub rcvbuf: Option<u32>,
    /// `wait`/`await`: deadline (default 10s).
    pub within: Option<Text<Dur>>,
    /// `slow_head`, `slow_body`: the pause between bytes.
    pub interval: Option<Text<Dur>>,
    /// `slow_body`: the body's length in bytes.
    pub length: Option<u64>,
    /// `stall_handshake`: how many bytes of the ClientHello to send.
    pub bytes: Option<u32>,
    /// `slow_read`: bytes per second; `load`: requests per second over all connections (the
    /// open model: each request at its scheduled time, its latency counted from then).
    pub rate: Option<u32>,
    /// `load`: how many connections (default 10), all driven from one thread.
    pub connections: Option<u32>,
    /// `load`: how long requests are started (default 2s).
    pub duration: Option<Text<Dur>>,
    /// `load`: keep connections alive (default true), or open one per request.
    pub keepalive: Option<bool>,
    /// As an action (`warm = "a"`, `["a", "b"]`, with `count`): open keep-alive connections
    /// and have each served one request (`warm-a`, …), one at a time, so that the child owning
    /// each is known; under event each waits until the worker that served it is free again.
    /// As `load`'s option (`warm = true`): answer every connection once before the load starts
    /// and the step ends, so that the child owning each is known (the crash oracle under load
    /// needs it).
    #[schemars(with = "Option<WarmValue>")]
    pub warm: Option<Spanned<WarmValue>>,
    /// `warm`, `open`: where the connection must land — `{ same_child_as = "warm-a" }` or
    /// `{ other_child_than = "warm-a" }` (a request some earlier step sent). The harness opens
    /// and warms connections until one is served by such a child, then closes the others.
    #[schemars(with = "Option<PlacementFile>")]
    pub on: Option<Spanned<PlacementFile>>,
    /// `load`: the weighted request mix (default `[{ path = "/" }]`).
    pub mix: Option<Vec<MixFile>>,
    /// `load`: a request without a response after this long has timed out (default 10s).
    /// `await`: the client gives up on the requests still waiting after this long (closes
    /// their connections; their outcome is `timeout`) and the scenario goes on.
    pub timeout: Option<Text<Dur>>,
    /// `kill_child_of`: the signal (`SIGKILL`, `SIGSEGV`, …).
    pub with: Option<Text<SignalName>>,
    /// `sleep`: why nothing observable can be waited for.
    pub reason: Option<String>,
    /// `wait`, `check`: the condition under an MPM instead of the step's own —
    /// `under.event = { busy_workers = 0, idle_workers = 2 }`; keys `prefork`, `worker`,
    /// `event`, and `threaded` for worker and event both (an MPM's own key wins).
    #[schemars(with = "Option<BTreeMap<UnderKey, ConditionFile>>")]
    pub under: Option<BTreeMap<String, Spanned<ConditionFile>>>,
    /// Run this step only under these MPMs.
    #[schemars(with = "Option<Vec<MpmName>>")]
    pub only: Option<Vec<Mpm>>,
    /// Run this step only against these targets: for a wait on something only one target shows
    /// (an event kind Apache does not log, a counter Apache lags on, SB-3).
    pub targets: Option<Vec<Target>>,
}

/// A key of `under`: an MPM, or `threaded` for worker and event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnderKey {
    Prefork,
    Worker,
    Event,
    Threaded,
}

impl FromStr for UnderKey {
    type Err = String;
    fn from_str(s: &str) -> Result<UnderKey, String> {
        match s {
            "prefork" => Ok(UnderKey::Prefork),
            "worker" => Ok(UnderKey::Worker),
            "event" => Ok(UnderKey::Event),
            "threaded" => Ok(UnderKey::Threaded),
            _ => Err(format!(
                "unknown MPM `{s}` in `under` (use prefork, worker, event, or threaded for \
                 worker and event)"
            )),
        }
    }
}

/// A step's action key: what the step does. A step has exactly one ([`StepFile::action`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKey {
    Open,
    Warm,
    Send,
    Request,
    Pipeline,
    SlowHead,
    SlowBody,
    SlowRead,
    StallHandshake,
    Reset,
    HalfClose,
    Close,
    Await,
    Wait,
    Check,
    Signal,
    KillChildOf,
    Sleep,
    Status,
    Load,
}

impl ActionKey {
    /// In the order a step's fields are declared (and messages list them).
    pub const ALL: [ActionKey; 20] = [
        ActionKey::Open,
        ActionKey::Warm,
        ActionKey::Send,
        ActionKey::Request,
        ActionKey::Pipeline,
        ActionKey::SlowHead,
        ActionKey::SlowBody,
        ActionKey::SlowRead,
        ActionKey::StallHandshake,
        ActionKey::Reset,
        ActionKey::HalfClose,
        ActionKey::Close,
        ActionKey::Await,
        ActionKey::Wait,
        ActionKey::Check,
        ActionKey::Signal,
        ActionKey::KillChildOf,
        ActionKey::Sleep,
        ActionKey::Status,
        ActionKey::Load,
    ];

    /// The key as written.
    pub fn name(self) -> &'static str {
        match self {
            ActionKey::Open => "open",
            ActionKey::Warm => "warm",
            ActionKey::Send => "send",
            ActionKey::Request => "request",
            ActionKey::Pipeline => "pipeline",
            ActionKey::SlowHead => "slow_head",
            ActionKey::SlowBody => "slow_body",
            ActionKey::SlowRead => "slow_read",
            ActionKey::StallHandshake => "stall_handshake",
            ActionKey::Reset => "reset",
            ActionKey::HalfClose => "half_close",
            ActionKey::Close => "close",
            ActionKey::Await => "await",
            ActionKey::Wait => "wait",
            ActionKey::Check => "check",
            ActionKey::Signal => "signal",
            ActionKey::KillChildOf => "kill_child_of",
            ActionKey::Sleep => "sleep",
            ActionKey::Status => "status",
            ActionKey::Load => "load",
        }
    }
}

impl fmt::Display for ActionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A step's action with the value its key holds: what [`StepFile::action`] finds, once, for
/// the loader to take apart.
#[derive(Debug, Clone)]
pub enum StepAction<'a> {
    Open(&'a Spanned<NameList>),
    /// `warm`'s names (`warm = true` is `load`'s option, not this action).
    Warm(Spanned<&'a NameList>),
    Send(&'a Spanned<String>),
    Request(&'a Spanned<String>),
    Pipeline(&'a Spanned<String>),
    SlowHead(&'a Spanned<String>),
    SlowBody(&'a Spanned<String>),
    SlowRead(&'a Spanned<String>),
    StallHandshake(&'a Spanned<NameList>),
    Reset(&'a Spanned<NameList>),
    HalfClose(&'a Spanned<NameList>),
    Close(&'a Spanned<NameList>),
    Await(&'a Spanned<NameList>),
    Wait(&'a Spanned<ConditionFile>),
    Check(&'a Spanned<ConditionFile>),
    Signal(MasterSignal),
    KillChildOf(&'a Spanned<String>),
    Sleep(Duration),
    Status(&'a Spanned<StatusKeys>),
    Load(&'a Spanned<String>),
}

impl StepAction<'_> {
    pub fn key(&self) -> ActionKey {
        match self {
            StepAction::Open(_) => ActionKey::Open,
            StepAction::Warm(_) => ActionKey::Warm,
            StepAction::Send(_) => ActionKey::Send,
            StepAction::Request(_) => ActionKey::Request,
            StepAction::Pipeline(_) => ActionKey::Pipeline,
            StepAction::SlowHead(_) => ActionKey::SlowHead,
            StepAction::SlowBody(_) => ActionKey::SlowBody,
            StepAction::SlowRead(_) => ActionKey::SlowRead,
            StepAction::StallHandshake(_) => ActionKey::StallHandshake,
            StepAction::Reset(_) => ActionKey::Reset,
            StepAction::HalfClose(_) => ActionKey::HalfClose,
            StepAction::Close(_) => ActionKey::Close,
            StepAction::Await(_) => ActionKey::Await,
            StepAction::Wait(_) => ActionKey::Wait,
            StepAction::Check(_) => ActionKey::Check,
            StepAction::Signal(_) => ActionKey::Signal,
            StepAction::KillChildOf(_) => ActionKey::KillChildOf,
            StepAction::Sleep(_) => ActionKey::Sleep,
            StepAction::Status(_) => ActionKey::Status,
            StepAction::Load(_) => ActionKey::Load,
        }
    }
}

/// An option of a step (a key besides its action, `only` and `targets`) and the actions that
/// read it.
pub struct StepOption {
    pub name: &'static str,
    /// Whether a step gives it.
    pub given: fn(&StepFile) -> bool,
    /// The actions that read it; in a step of any other it does nothing, and is a mistake.
    pub takers: &'static [ActionKey],
}

/// Which options each action takes: the one table of them.
pub const STEP_OPTIONS: [StepOption; 28] = {
    use ActionKey::*;
    const SENDS: &[ActionKey] = &[Send, Request];
    const fn option(
        name: &'static str,
        given: fn(&StepFile) -> bool,
        takers: &'static [ActionKey],
    ) -> StepOption {
        StepOption {
            name,
            given,
            takers,
        }
    }
    [
        option("path", |s| s.path.is_some(), &[Send, Request, SlowRead]),
        option("fault", |s| s.fault.is_some(), SENDS),
        option("raw", |s| s.raw.is_some(), SENDS),
        option("paths", |s| s.paths.is_some(), &[Pipeline]),
        option(
            "as",
            |s| s.as_.is_some(),
            &[Send, Request, Pipeline, SlowHead, SlowBody, SlowRead],
        ),
        option("method", |s| s.method.is_some(), SENDS),
        option("body", |s| s.body.is_some(), SENDS),
        option("connection_close", |s| s.connection_close, SENDS),
        option("connection_keep_alive", |s| s.connection_keep_alive, SENDS),
        option("http10", |s| s.http10, SENDS),
        option("count", |s| s.count.is_some(), &[Open, Warm]),
        option("rcvbuf", |s| s.rcvbuf.is_some(), &[Open, Warm, Request]),
        option("new_connection", |s| s.new_connection, &[Request]),
        option("on", |s| s.on.is_some(), &[Warm, Open]),
        option("under", |s| s.under.is_some(), &[Wait, Check]),
        option(
            "within",
            |s| s.within.is_some(),
            &[Wait, Await, Request, Warm],
        ),
        option("interval", |s| s.interval.is_some(), &[SlowHead, SlowBody]),
        option("length", |s| s.length.is_some(), &[SlowBody]),
        option("bytes", |s| s.bytes.is_some(), &[StallHandshake]),
        option("rate", |s| s.rate.is_some(), &[SlowRead, Load]),
        option("connections", |s| s.connections.is_some(), &[Load]),
        option("duration", |s| s.duration.is_some(), &[Load]),
        option("keepalive", |s| s.keepalive.is_some(), &[Load]),
        option("warm", StepFile::warms_load, &[Load]),
        option("mix", |s| s.mix.is_some(), &[Load]),
        option("timeout", |s| s.timeout.is_some(), &[Load, Await, Request]),
        option("with", |s| s.with.is_some(), &[KillChildOf]),
        option("reason", |s| s.reason.is_some(), &[Sleep]),
    ]
};

impl StepFile {
    /// The step's action: its one action key, with the key's value. Else the action keys it
    /// has (none, or more than one).
    pub fn action(&self) -> Result<StepAction<'_>, Vec<ActionKey>> {
        let warm = self.warm.as_ref().and_then(|w| match w.get_ref() {
            WarmValue::Names(names) => Some(Spanned::new(w.span(), names)),
            WarmValue::Flag(_) => None,
        });
        let given: Vec<StepAction<'_>> = [
            self.open.as_ref().map(StepAction::Open),
            warm.map(StepAction::Warm),
            self.send.as_ref().map(StepAction::Send),
            self.request.as_ref().map(StepAction::Request),
            self.pipeline.as_ref().map(StepAction::Pipeline),
            self.slow_head.as_ref().map(StepAction::SlowHead),
            self.slow_body.as_ref().map(StepAction::SlowBody),
            self.slow_read.as_ref().map(StepAction::SlowRead),
            self.stall_handshake
                .as_ref()
                .map(StepAction::StallHandshake),
            self.reset.as_ref().map(StepAction::Reset),
            self.half_close.as_ref().map(StepAction::HalfClose),
            self.close.as_ref().map(StepAction::Close),
            self.await_.as_ref().map(StepAction::Await),
            self.wait.as_ref().map(StepAction::Wait),
            self.check.as_ref().map(StepAction::Check),
            self.signal.map(StepAction::Signal),
            self.kill_child_of.as_ref().map(StepAction::KillChildOf),
            self.sleep
                .as_ref()
                .map(|Text(Dur(d))| StepAction::Sleep(*d)),
            self.status.as_ref().map(StepAction::Status),
            self.load.as_ref().map(StepAction::Load),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut given = given.into_iter();
        match (given.next(), given.next()) {
            (Some(one), None) => Ok(one),
            (first, second) => Err(first
                .into_iter()
                .chain(second)
                .chain(given)
                .map(|a| a.key())
                .collect()),
        }
    }

    /// The first option the step gives that its action does not read.
    pub fn stray_option(&self, action: ActionKey) -> Option<&'static StepOption> {
        STEP_OPTIONS
            .iter()
            .find(|o| (o.given)(self) && !o.takers.contains(&action))
    }

    /// `load`'s `warm = true`.
    pub fn warms_load(&self) -> bool {
        matches!(
            self.warm.as_ref().map(|w| w.get_ref()),
            Some(WarmValue::Flag(true))
        )
    }
}

/// `warm`: connection names (the action) or a flag (`load`'s option).
#[derive(Debug, Clone, PartialEq)]
pub enum WarmValue {
    Flag(bool),
    Names(NameList),
}

impl<'de> Deserialize<'de> for WarmValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WarmValue, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WarmValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "connection names to warm (\"a\" or [\"a\", \"b\"]), or true/false (a \
                     load's warm-up)",
                )
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<WarmValue, E> {
                Ok(WarmValue::Flag(b))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<WarmValue, E> {
                Ok(WarmValue::Names(NameList(vec![s.to_string()])))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<WarmValue, A::Error> {
                NameList::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(WarmValue::Names)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for WarmValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WarmValue::Flag(b) => s.serialize_bool(*b),
            WarmValue::Names(n) => n.serialize(s),
        }
    }
}

impl JsonSchema for WarmValue {
    fn schema_name() -> String {
        "Warm".into()
    }
    fn json_schema(g: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        #[derive(JsonSchema)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Warm {
            Flag(bool),
            Names(NameList),
        }
        Warm::json_schema(g)
    }
}

/// Where a placed connection must land: exactly one of the two.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementFile {
    /// On the child that served this request.
    #[schemars(with = "Option<String>")]
    pub same_child_as: Option<Spanned<String>>,
    /// On any child but the one that served this request.
    #[schemars(with = "Option<String>")]
    pub other_child_than: Option<Spanned<String>>,
}

/// One entry of a load's mix: a `path` or a server `fault`, and its `weight` (default 1).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MixFile {
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub fault: Option<Spanned<Text<Fault>>>,
    pub weight: Option<u32>,
}

/// An observable condition as written; every field given must hold.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionFile {
    /// Workers busy (mod_status BusyWorkers).
    pub busy_workers: Option<Count>,
    /// Workers idle (IdleWorkers).
    pub idle_workers: Option<Count>,
    /// Workers in keep-alive (`K`).
    pub keepalive_workers: Option<Count>,
    /// Workers sending a reply (`W`).
    pub writing_workers: Option<Count>,
    /// Worker slots of live children marked starting (`S`), all ThreadLimit slots of each.
    pub starting_workers: Option<Count>,
    /// Connections the event listener holds in keep-alive (ConnsAsyncKeepAlive).
    pub async_keepalive: Option<Count>,
    /// Connections the event listener is writing (ConnsAsyncWriting).
    pub async_writing: Option<Count>,
    /// Connections the event listener is closing lingeringly (ConnsAsyncClosing).
    pub async_closing: Option<Count>,
    /// Live child processes.
    pub processes: Option<Count>,
    /// Live child processes that accept connections.
    pub accepting: Option<Count>,
    /// Threads of the server's processes (master and children, from /proc).
    pub threads: Option<Count>,
    /// Summed PSS of the server's processes in KiB (from `/proc/<pid>/smaps_rollup`).
    pub pss_kb: Option<Count>,
    /// Child exits observed so far (any cause).
    pub child_exits: Option<Count>,
    /// Server events of this kind observed so far, with `events`.
    pub event: Option<Text<Kind>>,
    /// How many of `event` (default at least 1).
    pub events: Option<Count>,
    /// The master has exited.
    pub master_exited: Option<bool>,
    /// These connections have been closed by the server.
    #[schemars(with = "Option<NameList>")]
    pub closed: Option<Spanned<NameList>>,
    /// The responses to these requests have begun to arrive (a `slow_read`'s head is in), or
    /// the requests have ended.
    #[schemars(with = "Option<NameList>")]
    pub responding: Option<Spanned<NameList>>,
}

/// What must be true under one MPM (or `all`).
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectFile {
    /// Outcome per named request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(
        with = "BTreeMap<String, RequestExpectFile>",
        skip_serializing_if = "shown"
    )]
    pub requests: BTreeMap<Spanned<String>, RequestExpectFile>,
    /// Outcome of every request not named in `requests`.
    pub other_requests: Option<RequestExpectFile>,
    /// The crash oracle: which connections a process death may take down.
    pub crash: Option<CrashExpectFile>,
    /// How long opening each named connection took (the TCP handshake): a connection that the
    /// listen backlog has no room for waits for the client's SYN to be sent again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(
        with = "BTreeMap<String, ConnectExpectFile>",
        skip_serializing_if = "shown"
    )]
    pub connects: BTreeMap<Spanned<String>, ConnectExpectFile>,
    /// The master's exit code, when the scenario makes it exit (0 after a stop, non-zero after
    /// a fatal error).
    pub master_exit: Option<i32>,
    /// Text that some line of the server's error log must contain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>", skip_serializing_if = "shown")]
    pub log_has: Vec<Spanned<String>>,
    /// Text that no line of the server's error log may contain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>", skip_serializing_if = "shown")]
    pub log_never: Vec<Spanned<String>>,
    /// Server events by kind, counted over the whole run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, Count>", skip_serializing_if = "shown")]
    pub events: BTreeMap<Spanned<String>, Count>,
    /// Conditions that must have held at some moment of the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<ConditionFile>", skip_serializing_if = "shown")]
    pub seen: Vec<Spanned<ConditionFile>>,
    /// Conditions that must never have held during the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<ConditionFile>", skip_serializing_if = "shown")]
    pub never: Vec<Spanned<ConditionFile>>,
    /// What each named load must come to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(
        with = "BTreeMap<String, LoadExpectFile>",
        skip_serializing_if = "shown"
    )]
    pub loads: BTreeMap<Spanned<String>, LoadExpectFile>,
    /// The memory of the process that served each named request (its `X-Served-By` pid), from
    /// the server's /proc samples (TS-2): `memory = { leak = { grew_at_least = "60M",
    /// others_grew_at_most = "4M" } }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(
        with = "BTreeMap<String, MemoryExpectFile>",
        skip_serializing_if = "shown"
    )]
    pub memory: BTreeMap<Spanned<String>, MemoryExpectFile>,
}

/// What the memory of the process that served a request came to, and the server's around it
/// (TS-2). Each is judged from the /proc samples of the run: every process's PSS (its private
/// pages and its share of the shared ones, `/proc/<pid>/smaps_rollup`). The runner samples
/// /proc right before the step that sends the request and right after the step that awaits
/// it. "Before" is the last sample taken before the request was sent, so the process must
/// exist then: warm its connection first. Sizes as `leak:SIZE` reads them (`4M`, `60M`); every
/// size given must hold.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryExpectFile {
    /// The process's PSS grew by at least this much: from before the request to its largest in
    /// any later sample while it lived (its largest, so that memory a child frees on its way
    /// out — Apache destroys its pools before a child exits — does not hide what it held).
    #[schemars(with = "Option<String>")]
    pub grew_at_least: Option<Text<Size>>,
    /// … and by at most this much.
    #[schemars(with = "Option<String>")]
    pub grew_at_most: Option<Text<Size>>,
    /// Every other process of the server (the master too) alive both before the request and in
    /// the sample where this one was largest grew by at most this much meanwhile: what the
    /// request kept stayed in its own process.
    #[schemars(with = "Option<String>")]
    pub others_grew_at_most: Option<Text<Size>>,
    /// `true`: the process exited during the scenario (MaxConnectionsPerChild, a graceful
    /// restart) and the server's pool is whole again in the last sample of the scenario — as
    /// many processes as before the request — so that `server_grew_at_most` compares the server
    /// as it was with the server as it is again, not with a moment when the child was gone and
    /// its replacement not yet there (its memory would then be back by construction). Needs
    /// `server_grew_at_most`. `false`: the process is still alive at the end of the scenario.
    pub replaced: Option<bool>,
    /// The server's summed PSS in the last sample of the scenario exceeds that before the
    /// request by at most this much: what the request kept was handed back. It fails when the
    /// memory outlives the process that took it (the child is not replaced, or the memory is
    /// in a process that stays, or in memory the server's processes share), and when the
    /// replaced process's successor holds as much.
    #[schemars(with = "Option<String>")]
    pub server_grew_at_most: Option<Text<Size>>,
}

/// What a load must come to; every figure given must hold.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadExpectFile {
    /// Requests without a response: a count (`0`: at most none), a share of all (`"1%"`), or
    /// `{ at_least = …, at_most = … }`.
    pub failed: Option<LimitFile>,
    /// Requests whose connection could not be opened.
    pub refused: Option<LimitFile>,
    /// Requests whose connection the server reset.
    pub reset: Option<LimitFile>,
    /// Requests whose connection the server closed before the response.
    pub closed: Option<LimitFile>,
    /// Requests that timed out.
    pub timeout: Option<LimitFile>,
    /// Responses with a 5xx status.
    pub server_errors: Option<LimitFile>,
    /// Answers of `shared:DUR` requests in the mix that found their process's slot written by
    /// another request (TS-1): `0` under prefork, `{ at_least = 1 }` where threads share it.
    pub shared_clobbered: Option<LimitFile>,
    /// Latency percentiles from each request's intended start: a duration (at most), or
    /// `{ at_least = …, at_most = … }`.
    pub p50: Option<LatencyFile>,
    pub p99: Option<LatencyFile>,
    pub max: Option<LatencyFile>,
    /// Responses per second within the planned duration, at least.
    pub throughput: Option<f64>,
    /// How many requests the load made.
    pub requests: Option<Count>,
}

/// How many requests may end some way: a count (`0`: at most none), a share (`"1%"`: at most
/// one in a hundred), or `{ at_least = …, at_most = … }` of either.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitFile(pub super::Limit);

fn amount_of_count<E: de::Error>(n: i64) -> Result<super::Amount, E> {
    u64::try_from(n)
        .map(super::Amount::Count)
        .map_err(|_| E::custom("a count is 0 or more"))
}

fn amount_of_share<E: de::Error>(s: &str) -> Result<super::Amount, E> {
    s.trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .filter(|p| (0.0..=100.0).contains(p))
        .map(|p| super::Amount::Share(p / 100.0))
        .ok_or_else(|| E::custom(format!("`{s}` is not a share (`\"0.5%\"`, 0–100 %)")))
}

/// A count or a share, inside a `{ at_least, at_most }` table.
#[derive(Clone, Copy)]
struct AmountFile(super::Amount);

impl Serialize for AmountFile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            super::Amount::Count(n) => s.serialize_u64(n),
            super::Amount::Share(share) => s.collect_str(&format_args!("{}%", share * 100.0)),
        }
    }
}

impl<'de> Deserialize<'de> for AmountFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AmountFile, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AmountFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count (`0`) or a share (`\"1%\"`)")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<AmountFile, E> {
                amount_of_count(n).map(AmountFile)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<AmountFile, E> {
                amount_of_share(s).map(AmountFile)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for LimitFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LimitFile, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LimitFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count (`0`), a share (`\"1%\"`) or `{ at_least, at_most }`")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<LimitFile, E> {
                amount_of_count(n).map(|a| LimitFile(super::Limit::at_most(a)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LimitFile, E> {
                amount_of_share(s).map(|a| LimitFile(super::Limit::at_most(a)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LimitFile, A::Error> {
                let mut limit = super::Limit {
                    at_least: None,
                    at_most: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    let AmountFile(a) = map.next_value()?;
                    match key.as_str() {
                        "at_least" => limit.at_least = Some(a),
                        "at_most" => limit.at_most = Some(a),
                        other => {
                            return Err(de::Error::unknown_field(other, &["at_least", "at_most"]))
                        }
                    }
                }
                if limit.at_least.is_none() && limit.at_most.is_none() {
                    return Err(de::Error::custom("a limit needs at_least or at_most"));
                }
                Ok(LimitFile(limit))
            }
        }
        d.deserialize_any(V)
    }
}

/// At most an amount as the amount alone, else the table of the bounds.
impl Serialize for LimitFile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            super::Limit {
                at_least: None,
                at_most: Some(a),
            } => AmountFile(a).serialize(s),
            super::Limit { at_least, at_most } => {
                bounds(s, at_least.map(AmountFile), at_most.map(AmountFile))
            }
        }
    }
}

impl JsonSchema for LimitFile {
    fn schema_name() -> String {
        "Limit".into()
    }
    fn json_schema(g: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        #[derive(JsonSchema)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Amount {
            Count(u64),
            Share(String),
        }
        #[derive(JsonSchema)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Limit {
            AtMost(Amount),
            Bounds {
                at_least: Option<Amount>,
                at_most: Option<Amount>,
            },
        }
        Limit::json_schema(g)
    }
}

/// A latency bound: `"50ms"` (at most) or `{ at_least = "1s", at_most = "3s" }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged, expecting = "a duration (at most) or { at_least, at_most }")]
pub enum LatencyFile {
    AtMost(Text<Dur>),
    Bounds {
        at_least: Option<Text<Dur>>,
        at_most: Option<Text<Dur>>,
    },
}

/// The outcome of one request: a status, an outcome, or a table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestExpectFile {
    pub status: Option<u16>,
    pub outcome: Option<ExpectedOutcome>,
    pub latency_at_least: Option<Duration>,
    pub latency_at_most: Option<Duration>,
    pub same_child_as: Option<Spanned<String>>,
    pub other_child_than: Option<Spanned<String>>,
    pub closes: Option<bool>,
    pub bytes: Option<u64>,
    pub body: Option<BodyShape>,
    pub shared: Option<SharedExpect>,
    pub headers: BTreeMap<String, HeaderExpect>,
    pub reference_only: bool,
}

/// How long a connection took to open: `{ at_least = "800ms" }`, `{ at_most = "200ms" }`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectExpectFile {
    pub at_least: Option<Text<Dur>>,
    pub at_most: Option<Text<Dur>>,
}

/// The table form of a request expectation.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestExpectTable {
    /// The response status.
    pub status: Option<Status>,
    /// `ok` (any response), `failed` (no response), `closed`, `reset`, `refused`, `timeout`,
    /// `pending`.
    pub outcome: Option<ExpectedOutcome>,
    pub latency_at_least: Option<Text<Dur>>,
    pub latency_at_most: Option<Text<Dur>>,
    /// Served by the same child process as this request.
    #[schemars(with = "Option<String>")]
    pub same_child_as: Option<Spanned<String>>,
    /// Served by another child process than this request.
    #[schemars(with = "Option<String>")]
    pub other_child_than: Option<Spanned<String>>,
    /// The response says `Connection: close` (true) or keeps the connection (false).
    pub closes: Option<bool>,
    /// The body has this many bytes (tells pipelined responses apart: HT-2).
    pub bytes: Option<u64>,
    /// The body holds `pattern` (the bytes of `/bytes/SIZE` and `/static/SIZE`), is `empty`,
    /// or is `other`.
    pub body: Option<BodyShape>,
    /// What a `shared:DUR` request found in its process's slot: `intact` (its own token) or
    /// `clobbered` (another request of its process wrote there during its hold: TS-1).
    pub shared: Option<SharedExpect>,
    /// Response header fields: a string for an exact value, `true` for present, `false` for
    /// absent (`{ Keep-Alive = "timeout=5, max=100", Connection = false }`).
    pub headers: Option<BTreeMap<String, HeaderExpect>>,
    /// This expectation holds on the reference server only (Apache cannot meet it by design).
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(skip_serializing_if = "shown")]
    pub reference_only: bool,
}

/// An HTTP status, 100–599.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status(pub u16);

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
        let n = i64::deserialize(d)?;
        status(n).map_err(de::Error::custom)
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.0)
    }
}

impl JsonSchema for Status {
    fn schema_name() -> String {
        "Status".into()
    }
    fn json_schema(g: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        u16::json_schema(g)
    }
}

fn status(n: i64) -> Result<Status, String> {
    if (100..=599).contains(&n) {
        Ok(Status(n as u16))
    } else {
        Err(format!("`{n}` is not an HTTP status (100–599)"))
    }
}

impl<'de> Deserialize<'de> for RequestExpectFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RequestExpectFile, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RequestExpectFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a status (200), an outcome (\"failed\") or a table \
                     ({ status = 200, latency_at_most = \"1s\" })",
                )
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RequestExpectFile, E> {
                Ok(RequestExpectFile {
                    status: Some(status(n).map_err(E::custom)?.0),
                    ..Default::default()
                })
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<RequestExpectFile, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RequestExpectFile, E> {
                let outcome =
                    ExpectedOutcome::deserialize(de::value::StrDeserializer::<E>::new(s))?;
                Ok(RequestExpectFile {
                    outcome: Some(outcome),
                    ..Default::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RequestExpectFile, A::Error> {
                let t =
                    RequestExpectTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if let (Some(Text(Dur(l))), Some(Text(Dur(m)))) =
                    (&t.latency_at_least, &t.latency_at_most)
                {
                    if l > m {
                        return Err(de::Error::custom(format!(
                            "latency_at_least {l:?} is above latency_at_most {m:?}: nothing can hold"
                        )));
                    }
                }
                Ok(RequestExpectFile {
                    status: t.status.map(|s| s.0),
                    outcome: t.outcome,
                    latency_at_least: t.latency_at_least.map(|d| d.0 .0),
                    latency_at_most: t.latency_at_most.map(|d| d.0 .0),
                    same_child_as: t.same_child_as,
                    other_child_than: t.other_child_than,
                    closes: t.closes,
                    bytes: t.bytes,
                    body: t.body,
                    shared: t.shared,
                    headers: t.headers.unwrap_or_default(),
                    reference_only: t.reference_only,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// The shortest form that reads back the same: the status alone, the outcome alone, or the
/// table.
impl Serialize for RequestExpectFile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let alone = *self
            == RequestExpectFile {
                status: self.status,
                outcome: self.outcome,
                ..RequestExpectFile::default()
            };
        match (self.status, self.outcome) {
            (Some(status), None) if alone => s.serialize_u16(status),
            (None, Some(outcome)) if alone => outcome.serialize(s),
            _ => RequestExpectTable {
                status: self.status.map(Status),
                outcome: self.outcome,
                latency_at_least: self.latency_at_least.map(|d| Text(Dur(d))),
                latency_at_most: self.latency_at_most.map(|d| Text(Dur(d))),
                same_child_as: self.same_child_as.clone(),
                other_child_than: self.other_child_than.clone(),
                closes: self.closes,
                bytes: self.bytes,
                body: self.body,
                shared: self.shared,
                headers: (!self.headers.is_empty()).then(|| self.headers.clone()),
                reference_only: self.reference_only,
            }
            .serialize(s),
        }
    }
}

impl JsonSchema for RequestExpectFile {
    fn schema_name() -> String {
        "RequestExpect".into()
    }
    fn json_schema(g: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        #[derive(JsonSchema)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum RequestExpect {
            Status(u16),
            Outcome(ExpectedOutcome),
            Full(RequestExpectTable),
        }
        RequestExpect::json_schema(g)
    }
}

/// The crash oracle as written.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrashExpectFile {
    /// `connection`: only requests that carried the crash fail (prefork); `process`: every
    /// connection the crashed child owned fails — busy and idle — and no other (worker, event).
    pub scope: Text<Scope>,
    /// A replacement child accepts within this time after the crash.
    pub recovered_within: Option<Text<Dur>>,
    /// `recovered_within` holds on the reference server only.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(skip_serializing_if = "shown")]
    pub recovery_reference_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys the step table and the action keys name are the step's own (as its schema
    /// lists them).
    #[test]
    fn the_step_table_names_the_steps_keys() {
        let schema = serde_json::to_value(schemars::schema_for!(StepFile)).unwrap();
        let keys: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for name in ActionKey::ALL.map(ActionKey::name) {
            assert!(keys.contains(&name), "action `{name}` is not a step key");
        }
        for option in &STEP_OPTIONS {
            assert!(
                keys.contains(&option.name),
                "option `{}` is not a step key",
                option.name
            );
            assert!(
                !option.takers.is_empty(),
                "`{}` belongs to no action",
                option.name
            );
        }
    }

    /// With every action key given, `action` names them all, in their order.
    #[test]
    fn every_action_key_is_found() {
        let step: StepFile = toml::from_str(
            r#"
            open = "a"
            warm = "b"
            send = "a"
            request = "a"
            pipeline = "a"
            slow_head = "a"
            slow_body = "a"
            slow_read = "a"
            stall_handshake = "s"
            reset = "a"
            half_close = "a"
            close = "a"
            await = "r"
            wait = { busy_workers = 0 }
            check = { busy_workers = 0 }
            signal = "stop"
            kill_child_of = "r"
            sleep = "1s"
            status = { BusyWorkers = 0 }
            load = "l"
            "#,
        )
        .unwrap();
        assert_eq!(step.action().unwrap_err(), ActionKey::ALL);
        let one: StepFile = toml::from_str("send = \"a\"\nwarm = true").unwrap();
        assert_eq!(one.action().map(|a| a.key()), Ok(ActionKey::Send));
        assert_eq!(
            one.stray_option(ActionKey::Send).map(|o| o.name),
            Some("warm")
        );
        assert!(one.stray_option(ActionKey::Load).is_none());
    }
}
