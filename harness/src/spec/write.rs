//! Writing a case file: a [`CaseFile`] as TOML text, laid out as the catalogue's cases are —
//! top-level keys, then `[server]`, a `[[step]]` table per step and an `[expect.<section>]`
//! table per section, each value on one line — with comments where the writer wants them.
//!
//! The text comes from the file types' `Serialize` (beside their `Deserialize` in
//! [`super::file`]): toml's serializer writes the case as one inline value, in the order the
//! types declare their fields and without the keys a file leaves out (a `None`, which TOML has
//! no word for, or a default the type skips); read back as a [`Node`] that order stays (a
//! `toml::Value` would sort the keys), and [`Node`]s are laid out here. The layout knows two
//! keys of the format: `expect`, whose sections get a header each, and `step`, whose steps may
//! have comments.

use std::collections::BTreeMap;
use std::fmt::{self, Write};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::file::CaseFile;

/// Comments to write into a case file.
#[derive(Debug, Clone, Default)]
pub struct Comments {
    /// Lines at the top of the file.
    pub header: Vec<String>,
    /// A line before the step of that index (0 for the first), starting a group of steps.
    pub steps: BTreeMap<usize, String>,
}

/// `file` as the text of a case file, with `comments`; [`super::parse`] reads it back to the
/// same case (but for the lines steps are on).
pub fn case_text(file: &CaseFile, comments: &Comments) -> Result<String, String> {
    let Node::Table(entries) = Node::of(file)? else {
        return Err("a case file is a table".into());
    };
    let mut out = String::new();
    for line in &comments.header {
        let _ = writeln!(out, "{}", format!("# {line}").trim_end());
    }
    if !comments.header.is_empty() {
        out.push('\n');
    }
    let (values, tables): (Vec<_>, Vec<_>) = entries.iter().partition(|(_, v)| !v.is_header());
    for (key, value) in values {
        let _ = writeln!(out, "{} = {value}", Key(key));
    }
    for (key, value) in tables {
        out.push('\n');
        match value {
            // An array of tables: `[[step]]`, each step's entries below it.
            Node::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(note) = comments.steps.get(&i).filter(|_| key == "step") {
                        if i > 0 {
                            out.push('\n');
                        }
                        let _ = writeln!(out, "# {note}");
                    }
                    let _ = writeln!(out, "[[{}]]", Key(key));
                    item.entries(&mut out);
                }
            }
            // The expectation sections: `[expect.all]`, `[expect.prefork]`, ….
            Node::Table(sub) if key == "expect" && sub.iter().all(|(_, v)| v.is_table()) => {
                for (i, (name, table)) in sub.iter().enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    let _ = writeln!(out, "[{}.{}]", Key(key), Key(name));
                    table.entries(&mut out);
                }
            }
            _ => {
                let _ = writeln!(out, "[{}]", Key(key));
                value.entries(&mut out);
            }
        }
    }
    Ok(out)
}

/// A TOML value whose tables keep the order of their keys.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Node>),
    Table(Vec<(String, Node)>),
}

impl Node {
    /// `value` as toml's serializer writes it.
    fn of(value: &impl Serialize) -> Result<Node, String> {
        let mut inline = String::new();
        value
            .serialize(toml::ser::ValueSerializer::new(&mut inline))
            .map_err(|e| format!("cannot write the case: {e}"))?;
        Node::deserialize(toml::de::ValueDeserializer::new(&inline))
            .map_err(|e| format!("cannot read the case written: {e}"))
    }

    fn is_table(&self) -> bool {
        matches!(self, Node::Table(_))
    }

    /// Written under a header of its own (a table, or an array of tables), not as `key = value`.
    fn is_header(&self) -> bool {
        match self {
            Node::Table(_) => true,
            Node::Array(items) => !items.is_empty() && items.iter().all(Node::is_table),
            _ => false,
        }
    }

    /// A table's entries, a line each.
    fn entries(&self, out: &mut String) {
        if let Node::Table(entries) = self {
            for (key, value) in entries {
                let _ = writeln!(out, "{} = {value}", Key(key));
            }
        }
    }
}

/// Inline: on one line.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Str(s) => write_string(f, s),
            Node::Int(n) => write!(f, "{n}"),
            Node::Float(x) => write!(f, "{}", toml::Value::Float(*x)),
            Node::Bool(b) => write!(f, "{b}"),
            Node::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Node::Table(entries) if entries.is_empty() => f.write_str("{}"),
            Node::Table(entries) => {
                f.write_str("{ ")?;
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{} = {value}", Key(key))?;
                }
                f.write_str(" }")
            }
        }
    }
}

/// A key: bare when it is a plain word (letters, digits, `_`), else quoted (`"warm-a"`,
/// `"p#2"`).
struct Key<'a>(&'a str);

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = !self.0.is_empty()
            && self
                .0
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if plain {
            f.write_str(self.0)
        } else {
            write_string(f, self.0)
        }
    }
}

/// A basic string, escaped.
fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04X}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TOML value")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Node, E> {
                Ok(Node::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Node, E> {
                Ok(Node::Int(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Node, E> {
                i64::try_from(n)
                    .map(Node::Int)
                    .map_err(|_| E::custom(format!("{n} is beyond TOML's integers")))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Node, E> {
                Ok(Node::Float(x))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Node, E> {
                Ok(Node::Str(s.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Node::Table(entries))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every case of the catalogue, written back, loads to the same case (but for the lines
    /// of its steps), and writing that file again gives the same text.
    #[test]
    fn every_catalogue_case_reads_back_the_same() {
        let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
        let files = super::super::find_files(&specs);
        assert!(
            files.len() > 50,
            "{} cases in {}",
            files.len(),
            specs.display()
        );
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let file: CaseFile = toml::from_str(&text).unwrap();
            let written = case_text(&file, &Comments::default()).unwrap();
            let again =
                super::super::parse(&path, &written).unwrap_or_else(|e| panic!("{e}\n{written}"));
            let original = super::super::load(&path).unwrap();
            assert_eq!(shape(&again), shape(&original), "{}", path.display());
            let reread: CaseFile = toml::from_str(&written).unwrap();
            let rewritten = case_text(&reread, &Comments::default()).unwrap();
            assert_eq!(rewritten, written, "{}", path.display());
        }
    }

    /// What a case loads to, without the lines its steps are on.
    pub(crate) fn shape(case: &super::super::Case) -> String {
        let steps: Vec<String> = case
            .steps
            .iter()
            .map(|s| format!("{:?} {:?} {:?}", s.only, s.targets, s.action))
            .collect();
        format!(
            "{} {} {:?} {:?} {:?} {:?} {:?}\n{}\n{:#?}",
            case.id,
            case.title,
            case.checks,
            case.tags,
            case.mpms,
            case.targets,
            case.server,
            steps.join("\n"),
            case.expect
        )
    }

    #[test]
    fn keys_and_strings_are_written_as_toml_reads_them() {
        let node = Node::Table(vec![
            (
                "plain_key".into(),
                Node::Str("a \"quoted\"\\ \r\n\t\u{7f}".into()),
            ),
            ("p#2".into(), Node::Int(-3)),
            ("warm-a".into(), Node::Float(1.5)),
            (
                "".into(),
                Node::Array(vec![Node::Bool(true), Node::Table(vec![])]),
            ),
        ]);
        let text = format!("v = {node}");
        assert_eq!(
            text,
            "v = { plain_key = \"a \\\"quoted\\\"\\\\ \\r\\n\\t\\u007F\", \"p#2\" = -3, \
             \"warm-a\" = 1.5, \"\" = [true, {}] }"
        );
        let back: toml::Table = toml::from_str(&text).unwrap();
        let v = &back["v"];
        assert_eq!(v["plain_key"].as_str(), Some("a \"quoted\"\\ \r\n\t\u{7f}"));
        assert_eq!(v["p#2"].as_integer(), Some(-3));
        assert_eq!(v["warm-a"].as_float(), Some(1.5));
    }
}
