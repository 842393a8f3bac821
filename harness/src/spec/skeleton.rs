//! A new case's first draft: `mpm-harness new THEME/NAME` writes it where its id says, with the
//! schema line editors read (`#:schema`, taplo / Even Better TOML), comments that point at the
//! format, and a scenario that loads, runs and passes as it stands.

use std::path::{Path, PathBuf};

/// The file the schema line of every case points at, beside the theme folders.
pub const SCHEMA_FILE: &str = "case.schema.json";

/// The first line of every case file: where editors find the schema.
pub fn schema_line() -> String {
    format!("#:schema ../{SCHEMA_FILE}")
}

/// Why a new case cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum NewCaseError {
    #[error(
        "`{0}` is not a case id: write THEME/NAME, two words of letters, digits, `-` or `_` \
         (e.g. crash/segv-isolation)"
    )]
    BadId(String),
    #[error("{} exists already: choose another name, or edit it", .0.display())]
    Exists(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes the skeleton of case `id` under `specs` (and the schema beside the theme folders when
/// it is not there); returns the case file's path.
pub fn write_new_case(specs: &Path, id: &str) -> Result<PathBuf, NewCaseError> {
    let word = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let Some((theme, name)) = id.split_once('/').filter(|(t, n)| word(t) && word(n)) else {
        return Err(NewCaseError::BadId(id.to_string()));
    };
    let path = specs.join(theme).join(format!("{name}.toml"));
    if path.exists() {
        return Err(NewCaseError::Exists(path));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| NewCaseError::Io { path, source }
    };
    std::fs::create_dir_all(specs.join(theme)).map_err(io(&specs.join(theme)))?;
    let schema = specs.join(SCHEMA_FILE);
    if !schema.exists() {
        std::fs::write(&schema, super::schema() + "\n").map_err(io(&schema))?;
    }
    std::fs::write(&path, skeleton(theme, name)).map_err(io(&path))?;
    Ok(path)
}

/// The text of a new case.
fn skeleton(theme: &str, name: &str) -> String {
    format!(
        r#"{schema}
# {theme}/{name}. The format: specs/README.md; every field: `mpm-harness schema`.
id = "{theme}/{name}"
title = "What this case shows, in one line"
checks = []                      # the statements it checks (specs/statements.toml), e.g. ["PF-2"]
# mpms = ["event"]               # default: prefork, worker and event
# targets = ["reference"]        # default: every target (say why in a comment if not)

[server]
# faults = true                  # serve /fault/... (crash:segv, sleep:1s, …): `fault = ` below
all = {{ KeepAliveTimeout = "5s" }}
prefork = {{ StartServers = 2, MinSpareServers = 1, MaxSpareServers = 2, ServerLimit = 2 }}
threaded = {{ ServerLimit = 1, StartServers = 1, ThreadsPerChild = 2, MinSpareThreads = 1 }}

[[step]]
wait = {{ idle_workers = 2 }}      # the pool is up: every wait is for something observable

[[step]]
warm = "a"                       # a keep-alive connection served once (request warm-a), so
                                 # the child that owns it is known
[[step]]
request = "a"                    # a request and its outcome in one step (`send` + `await`)
as = "again"

[expect.all]
requests = {{ again = {{ status = 200, same_child_as = "warm-a", closes = false }} }}
# [expect.prefork], [expect.worker], [expect.event]: what differs by MPM
"#,
        schema = schema_line()
    )
}
