//! The `mpm-harness` command line: exit codes, spec errors with their place, reports, and no
//! server left behind when the harness itself is SIGKILLed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;

const QUICK_CASE: &str = r#"
id = "quick/hello"
title = "one request"
[server]
all = { StartServers = 1 }
threaded = { ThreadsPerChild = 2 }

[[step]]
open = "a"
[[step]]
send = "a"
as = "hello"
[[step]]
await = "hello"

[expect.all]
requests = { hello = { status = 200, closes = false } }
"#;

const HANGING_CASE: &str = r#"
id = "quick/hang"
title = "a request that never ends"
[server]
faults = true
all = { StartServers = 2 }
threaded = { ThreadsPerChild = 2 }
[[step]]
open = "a"
[[step]]
send = "a"
fault = "hang"
[[step]]
await = "a"
within = "60s"
"#;

fn harness() -> Command {
    Command::new(cargo_bin("mpm-harness"))
}

/// The harness on the catalogue in `specs`.
fn harness_on(specs: &std::path::Path) -> Command {
    let mut cmd = harness();
    cmd.arg("--specs").arg(specs);
    cmd
}

/// A specs folder holding `case` at the path its id names (`quick/case.toml` when it names
/// none that could be a path).
fn specs_with(case: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let id = case
        .lines()
        .find_map(|l| l.strip_prefix("id = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|id| id.split('/').count() == 2)
        .unwrap_or("quick/case");
    let path = dir.path().join(format!("{id}.toml"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, case).unwrap();
    dir
}

#[test]
fn schema_is_a_json_schema() {
    let out = harness().arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "CaseFile");
    assert!(schema["properties"]["expect"].is_object());
}

#[test]
fn check_names_file_line_and_column_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        QUICK_CASE.replace("as = \"hello\"", "as = \"hello\"\nfault = \"crash:kill\""),
    )
    .unwrap();
    let out = harness().arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:13:9: invalid fault `crash:kill`",
            bad.display()
        )),
        "{stderr}"
    );

    std::fs::create_dir(dir.path().join("quick")).unwrap();
    let good = dir.path().join("quick/hello.toml");
    std::fs::write(&good, QUICK_CASE).unwrap();
    let out = harness().arg("check").arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// `check DIR` checks every case under it, and says that a case file outside a theme folder
/// belongs in one.
#[test]
fn check_reads_a_folder_and_finds_a_case_outside_a_theme() {
    let specs = specs_with(QUICK_CASE);
    let out = harness().arg("check").arg(specs.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok (quick/hello, 3 steps)"),
        "{out:?}"
    );
    let loose = specs.path().join("hello.toml");
    std::fs::write(&loose, QUICK_CASE).unwrap();
    let out = harness().arg("check").arg(specs.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:1:1: a case file belongs in a theme folder",
            loose.display()
        )),
        "{stderr}"
    );
    // `run` and `list` refuse such a catalogue too.
    let out = harness_on(specs.path()).arg("list").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A run that would run nothing is a usage error, not a green run: a folder that does not
/// exist, one without cases, a filter that matches no test.
#[test]
fn a_run_of_nothing_is_exit_2() {
    let empty = tempfile::tempdir().unwrap();
    let missing = empty.path().join("nothing-here");
    for (dir, says) in [
        (missing.as_path(), "no such folder of spec cases"),
        (empty.path(), "no case files"),
    ] {
        let out = harness_on(dir).arg("run").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{out:?}"
        );
    }
    let specs = specs_with(QUICK_CASE);
    let out = harness_on(specs.path())
        .args(["run", "no-such-case"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("nothing to run: no test of the 1 cases matches `no-such-case`"),
        "{out:?}"
    );
}

#[test]
fn a_bad_catalogue_is_exit_2_not_a_panic() {
    let specs = specs_with("id = \"x\"\ntitle = \"t\"\n[[step]]\nopen = 3\n");
    let out = harness_on(specs.path()).arg("list").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("case.toml:4:8"),
        "{out:?}"
    );
}

#[test]
fn list_names_every_case_mpm_and_target() {
    let specs = specs_with(QUICK_CASE);
    let out = harness_on(specs.path()).arg("list").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for mpm in ["prefork", "worker", "event"] {
        assert!(
            stdout.contains(&format!("quick/hello::{mpm}::reference")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("quick/hello::{mpm}::apache")),
            "{stdout}"
        );
    }
}

#[test]
fn run_prints_the_matrix_and_writes_reports() {
    let specs = specs_with(QUICK_CASE);
    let out_dir = tempfile::tempdir().unwrap();
    let junit = out_dir.path().join("junit.xml");
    let json = out_dir.path().join("runs.json");
    let out = harness_on(specs.path())
        .args(["run", "--junit"])
        .arg(&junit)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let matrix_row = stdout
        .lines()
        .find(|l| l.starts_with("quick/hello"))
        .expect("a matrix row");
    assert_eq!(matrix_row.matches("PASS").count(), 3, "{matrix_row}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("quick/hello::event::reference"), "{xml}");
    let runs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 3);
}

/// Two warmed connections and a crash on one: a case whose picture has lanes to count.
const CRASH_CASE: &str = r#"
id = "quick/crash"
title = "a crash beside an idle connection"
[server]
faults = true
all = { KeepAliveTimeout = "30s" }
prefork = { StartServers = 3, MinSpareServers = 1, MaxSpareServers = 3 }
threaded = { ServerLimit = 1, StartServers = 1, ThreadsPerChild = 3, MinSpareThreads = 1 }
[[step]]
wait = { idle_workers = 3 }
[[step]]
open = ["a", "b"]
[[step]]
send = "a"
as = "warm-a"
[[step]]
await = "warm-a"
[[step]]
send = "b"
as = "warm-b"
[[step]]
await = "warm-b"
[[step]]
send = "b"
fault = "crash:segv"
as = "crash"
[[step]]
await = "crash"
[[step]]
wait = { child_exits = 1 }
# Under worker and event the replacement, so that the recording sees a third process.
[[step]]
wait = { idle_workers = { at_least = 1 } }
"#;

/// The HTML report is well-formed, self-contained, and each run's picture has a lane for every
/// connection the run's recording names and every process it saw (as read from the JSON report,
/// not by the picture's own code).
#[test]
fn the_html_report_draws_every_connection_and_process_of_each_run() {
    use std::collections::{BTreeMap, BTreeSet};
    let specs = specs_with(CRASH_CASE);
    let out_dir = tempfile::tempdir().unwrap();
    let json = out_dir.path().join("runs.json");
    let html = out_dir.path().join("report.html");
    let out = harness_on(specs.path())
        .args(["run", "--json"])
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert!(out.status.code().is_some(), "{out:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    for outside in ["src=", "<link", "@import", "url(", "href=\"http"] {
        assert!(!page.contains(outside), "`{outside}` in the report");
    }
    // Expected, from the JSON: per (mpm, target), the connections and pids of the scenario.
    let runs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mut expected: BTreeMap<(String, String), (BTreeSet<String>, BTreeSet<String>)> =
        BTreeMap::new();
    for run in runs.as_array().unwrap() {
        let key = (
            run["mpm"].as_str().unwrap().to_string(),
            run["target"].as_str().unwrap().to_string(),
        );
        let (conns, pids) = expected.entry(key).or_default();
        let rec = &run["recording"];
        pids.insert(rec["master"].to_string());
        for e in rec["timeline"].as_array().unwrap() {
            if e["kind"] == "teardown" {
                break;
            }
            if let Some(c) = e["conn"].as_str() {
                conns.insert(c.to_string());
            }
            for pid in [&e["served_by"]["pid"], &e["pid"]] {
                if pid.is_i64() && e["kind"] != "server_event" && e["kind"] != "killed" {
                    pids.insert(pid.to_string());
                }
            }
            for child in e["children"].as_array().into_iter().flatten() {
                pids.insert(child["pid"].to_string());
            }
        }
        assert!(conns.contains("a") && conns.contains("b"), "{conns:?}");
        assert!(
            pids.len() >= 3,
            "master, the crashed child, another: {pids:?}"
        );
    }
    // Drawn: the lanes inside each run's section (the first picture; the zoom repeats them).
    let body = page.trim_start_matches("<!DOCTYPE html>\n");
    let mut reader = quick_xml::Reader::from_str(body);
    let mut drawn: BTreeMap<(String, String), (BTreeSet<String>, BTreeSet<String>)> =
        BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    loop {
        let event = reader.read_event().expect("well-formed XML");
        let e = match event {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => e,
            _ => continue,
        };
        let attrs: BTreeMap<String, String> = e
            .attributes()
            .map(|a| a.expect("an attribute"))
            .map(|a| {
                (
                    String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                    String::from_utf8_lossy(&a.value).into_owned(),
                )
            })
            .collect();
        let class = attrs.get("class").map(String::as_str).unwrap_or("");
        if e.name().as_ref() == b"section" && class == "run" {
            current = Some((attrs["data-mpm"].clone(), attrs["data-target"].clone()));
        }
        let Some(key) = &current else { continue };
        let (conns, pids) = drawn.entry(key.clone()).or_default();
        match class {
            "lane conn" => {
                conns.insert(attrs["data-name"].clone());
            }
            "lane proc" => {
                pids.insert(attrs["data-pid"].clone());
            }
            _ => {}
        }
    }
    assert_eq!(drawn.len(), 3, "a section per run");
    for (key, (conns, pids)) in &expected {
        let (drawn_conns, drawn_pids) = &drawn[key];
        assert_eq!(drawn_conns, conns, "connections of {key:?}");
        assert!(
            pids.is_subset(drawn_pids),
            "{key:?}: {pids:?} not all in {drawn_pids:?}"
        );
    }
}

#[test]
fn repro_writes_the_html_report_of_its_run() {
    let specs = specs_with(QUICK_CASE);
    let out_dir = tempfile::tempdir().unwrap();
    let html = out_dir.path().join("repro.html");
    let out = harness_on(specs.path())
        .args(["repro", "quick/hello", "--mpm", "event", "--html"])
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("quick/hello under event against reference: PASS"));
    assert!(
        page.contains("class=\"lane conn\" data-name=\"a\""),
        "{page}"
    );
}

#[test]
fn a_failing_expectation_is_exit_1_and_explains_itself() {
    let specs = specs_with(&QUICK_CASE.replace("status = 200", "status = 404"));
    let out = harness_on(specs.path())
        .args(["run", "--mpm", "worker"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("[FAILED] request hello: expected status 404; observed 200 ("),
        "{stdout}"
    );
    assert!(
        stdout.contains("STEP   (line 10) send GET / on a as hello"),
        "{stdout}"
    );
}

const NO_FAULTS_CASE: &str = r#"
id = "quick/no-faults"
title = "without faults a fault path is only a path"
[server]
all = { StartServers = 1 }
prefork = { MinSpareServers = 1 }
threaded = { ThreadsPerChild = 2, MinSpareThreads = 1 }
[[step]]
open = "a"
[[step]]
send = "a"
fault = "crash:segv"
as = "crash"
[[step]]
await = "crash"
[[step]]
send = "a"
as = "after"
[[step]]
await = "after"
[expect.all]
requests = { crash = 404, after = { status = 200, same_child_as = "crash" } }
never = [{ child_exits = { at_least = 1 } }]
"#;

#[test]
fn every_target_honours_faults_off() {
    let specs = specs_with(NO_FAULTS_CASE);
    let mut cmd = harness();
    cmd.arg("--specs")
        .arg(specs.path())
        .args(["run", "--target", "reference"]);
    let apache = apache_available();
    if apache {
        cmd.args(["--target", "apache"]);
    } else {
        eprintln!("note: Apache not installed; checking the reference only");
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("quick/no-faults"))
        .expect("a matrix row");
    let expected = if apache { 6 } else { 3 };
    assert_eq!(row.matches("PASS").count(), expected, "{row}");
}

#[test]
fn a_step_the_target_cannot_decide_is_an_error_not_a_timeout() {
    if !apache_available() {
        eprintln!("note: Apache not installed; skipped");
        return;
    }
    let case = QUICK_CASE.replace(
        "[[step]]\nawait = \"hello\"",
        "[[step]]\nawait = \"hello\"\n[[step]]\nwait = { event = \"keep_alive_closed_early\" }",
    );
    assert_ne!(case, QUICK_CASE);
    let specs = specs_with(&case);
    let started = Instant::now();
    let out = harness_on(specs.path())
        .args(["run", "--target", "apache", "--mpm", "event"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("ERROR quick/hello::event::apache"),
        "{stdout}"
    );
    assert!(
        stdout.contains("does not report keep_alive_closed_early events"),
        "{stdout}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "it waited");
    let xml_dir = tempfile::tempdir().unwrap();
    let junit = xml_dir.path().join("j.xml");
    let _ = harness_on(specs.path())
        .args(["run", "--target", "apache", "--mpm", "event", "--junit"])
        .arg(&junit)
        .output()
        .unwrap();
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<error"), "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");
}

/// Server processes started by the harness run that carries our marker in its environment:
/// refhttpd (the harness in its hidden serve mode) or Apache.
fn server_processes_of(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let marker = format!("MPM_HARNESS_TEST_PARENT={marker}");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let server = cmdline.contains("__serve") || cmdline.contains("apache2");
        if server && String::from_utf8_lossy(&environ).contains(&marker) {
            found.push(pid);
        }
    }
    found
}

fn apache_available() -> bool {
    let out = harness().arg("list").arg("::apache").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    out.status.success() && !stdout.contains("not available")
}

#[test]
fn no_server_survives_a_sigkilled_harness() {
    kill_harness_mid_case("reference");
}

/// The same for Apache; skipped with a message where Apache is not installed (the apache spec
/// tests are then listed as ignored).
#[test]
fn no_apache_survives_a_sigkilled_harness() {
    if !apache_available() {
        eprintln!("apache target not available here: nothing to check");
        return;
    }
    kill_harness_mid_case("apache");
}

fn kill_harness_mid_case(target: &str) {
    let me = format!("{}-{target}", std::process::id());
    let specs = specs_with(HANGING_CASE);
    // A TMPDIR of our own, to see that the server's temp dir goes too (the killed harness cannot
    // remove it; the server's top process does). Apache's children (nobody) must traverse it.
    let tmp = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut child = harness_on(specs.path())
        .args(["run", "--mpm", "worker", "--target", target])
        .env("MPM_HARNESS_TEST_PARENT", &me)
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Master plus two children: the server is up and serving the hanging request.
    while server_processes_of(&me).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the {target} server never came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<i32> = server_processes_of(&me)
            .into_iter()
            .filter(|p| !is_zombie(*p))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{target} server processes left: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The server's top process removed the dir before it exited.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{target} left in its TMPDIR: {left:?}");
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Runs `case` alone under worker against the reference: the exit code and what it printed.
fn run_under_worker(case: &str) -> (Option<i32>, String) {
    let specs = specs_with(case);
    let out = harness_on(specs.path())
        .args(["run", "--mpm", "worker"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The crash oracle can fail: under worker, a crash takes the other connection of its child
/// too, so a case claiming `connection` scope there must fail, naming the lost request.
#[test]
fn the_crash_oracle_catches_a_wrong_blast_radius() {
    let case = r#"
id = "quick/wrong-radius"
title = "claims prefork's isolation under worker"
[server]
faults = true
all = { KeepAliveTimeout = "30s" }
threaded = { ServerLimit = 1, StartServers = 1, ThreadsPerChild = 2, MinSpareThreads = 1 }
[[step]]
wait = { idle_workers = 2 }
[[step]]
open = "a"
[[step]]
send = "a"
as = "warm-a"
[[step]]
await = "warm-a"
[[step]]
open = "b"
[[step]]
send = "b"
as = "warm-b"
[[step]]
await = "warm-b"
[[step]]
send = "a"
fault = "sleep:1s"
as = "slow"
[[step]]
send = "b"
fault = "crash:segv"
as = "crash"
[[step]]
await = ["slow", "crash"]
[expect.all]
crash = { scope = "connection" }
"#;
    let (code, stdout) = run_under_worker(case);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("[FAILED] blast radius (connection)")
            && stdout.contains("failed but should not: slow on a"),
        "{stdout}"
    );
}

/// The oracle under load can fail too: one worker child owns every load connection, so its
/// crash loses load requests or connections that a `connection` scope does not allow; the check
/// names them.
#[test]
fn the_crash_oracle_under_load_catches_a_wrong_blast_radius() {
    let case = r#"
id = "quick/wrong-radius-under-load"
title = "claims prefork's isolation under worker, under load"
[server]
faults = true
all = { KeepAliveTimeout = "30s", MaxKeepAliveRequests = 0 }
threaded = { ServerLimit = 1, StartServers = 1, ThreadsPerChild = 8, MinSpareThreads = 1 }
[[step]]
wait = { idle_workers = 8 }
[[step]]
load = "traffic"
connections = 4
rate = 200
duration = "1s"
warm = true
[[step]]
open = "victim"
[[step]]
send = "victim"
fault = "crash:segv"
[[step]]
await = ["victim", "traffic"]
[expect.all]
crash = { scope = "connection" }
"#;
    let (code, stdout) = run_under_worker(case);
    assert_eq!(code, Some(1), "{stdout}");
    // The crash finds each load connection in flight (its request fails) or idle (it is
    // closed with the child): either is a loss that the `connection` scope does not allow.
    assert!(
        stdout.contains("[FAILED] blast radius under load traffic")
            && (stdout.contains("requests failed that the crash does not explain")
                || stdout.contains("ended with it besides the crash's own")),
        "{stdout}"
    );
}

/// What the catalogue does not cover yet (issue: every statement and setting checked). The list
/// may only shrink: a gap not listed here fails the test, and so does a listed gap that is
/// covered now (take it off the list).
const KNOWN_GAPS: &[&str] = &[];

#[test]
fn coverage_of_the_catalogue_only_grows() {
    let out = harness().arg("coverage").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let gaps: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("uncovered ("))
        .skip(1)
        .map(str::trim)
        .collect();
    let new: Vec<&&str> = gaps.iter().filter(|g| !KNOWN_GAPS.contains(g)).collect();
    assert!(new.is_empty(), "newly uncovered: {new:#?}\n{stdout}");
    let closed: Vec<&&str> = KNOWN_GAPS.iter().filter(|g| !gaps.contains(g)).collect();
    assert!(
        closed.is_empty(),
        "covered now, take off KNOWN_GAPS: {closed:#?}"
    );
    let expected = if KNOWN_GAPS.is_empty() { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(expected), "{stdout}");
}

/// Explores `mpm` against the real reference with `seed`, judged by the wrong model `pretend`: the
/// explorer must disagree, shrink, and write one case that `check` accepts and `run` fails on
/// with a failed request whose name starts with `fails_on`. Returns the shrunk operations
/// (the title after its `;`).
fn explore_finds_a_wrong_model(mpm: &str, pretend: &str, seed: u64, fails_on: &str) -> String {
    let out = tempfile::tempdir().unwrap();
    let found = out.path().join("found");
    let run = harness()
        .args(["explore", "--mpm", mpm, "--runs", "150", "--seed"])
        .arg(seed.to_string())
        .args(["--pretend", pretend, "--out"])
        .arg(&found)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("MISMATCH, shrunk to"), "{stdout}");
    let files: Vec<_> = std::fs::read_dir(&found).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let path = files[0].path();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(&format!("--seed {seed}`")),
        "the seed is in a comment:\n{text}"
    );
    let check = harness().arg("check").arg(&path).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{check:?}");
    let again = harness()
        .arg("--specs")
        .arg(out.path())
        .args(["run", "--mpm", mpm])
        .output()
        .unwrap();
    let again_out = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.status.code(), Some(1), "{again_out}");
    assert!(
        again_out.contains(&format!("[FAILED] request {fails_on}")),
        "{again_out}"
    );
    let title = text
        .lines()
        .find(|l| l.starts_with("title"))
        .expect("a title");
    title
        .split(';')
        .nth(1)
        .unwrap_or("")
        .trim_end_matches('"')
        .to_string()
}

/// Told that prefork's crash takes every connection (as worker's does), the explorer finds the
/// mismatch and shrinks it to a few steps: the crash (or kill) and what shows it.
#[test]
fn explore_finds_a_prefork_that_loses_everything() {
    let ops = explore_finds_a_wrong_model("prefork", "prefork-loses-everything", 1, "last-");
    assert!(
        ops.matches(',').count() <= 1 && (ops.contains("crash") || ops.contains("kill")),
        "{ops}"
    );
}

/// Told that event keeps a worker through each keep-alive wait (as worker does), the explorer
/// finds that event answers a new connection the wrong model expects to wait, and shrinks the
/// scenario to that probe. (With other seeds it finds as often that event closes an idle
/// keep-alive connection on a graceful restart, which the wrong model expects it to keep.)
#[test]
fn explore_finds_an_event_that_keeps_its_workers() {
    let ops = explore_finds_a_wrong_model("event", "event-keeps-workers", 1, "probe-");
    assert_eq!(ops.trim(), "probe");
}

/// Told that event's threads each keep their own state (TS-1 says a child's threads share
/// it), the explorer finds a shared: request that another of its child clobbered, and shrinks
/// the scenario to the two of them.
#[test]
fn explore_finds_threads_that_isolate_state() {
    let ops = explore_finds_a_wrong_model("event", "threads-isolate-state", 1, "shared-");
    assert_eq!(ops.trim(), "shared c0, shared c1");
}

/// Against the real models the reference agrees, and the same seed replays the same
/// scenarios.
#[test]
fn explore_agrees_with_the_reference_and_replays_its_seed() {
    let explore = || {
        let out = tempfile::tempdir().unwrap();
        let run = harness()
            .args(["explore", "--runs", "12", "--seed", "42", "--out"])
            .arg(out.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        assert_eq!(run.status.code(), Some(0), "{stdout}");
        assert_eq!(stdout.matches("scenarios agreed with the model").count(), 3);
        assert!(std::fs::read_dir(out.path()).unwrap().next().is_none());
        // The scenarios, without their timings.
        stdout
            .lines()
            .filter(|l| l.starts_with('['))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(explore(), explore());
    let bad = harness().args(["explore", "--runs", "0"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// `new` writes a case where its id says, which `check` accepts and `run` passes; it never
/// overwrites one, and a bad id is a usage error.
#[test]
fn new_writes_a_case_that_checks_and_runs() {
    let specs = tempfile::tempdir().unwrap();
    let out = harness_on(specs.path())
        .args(["new", "mine/first"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let path = specs.path().join("mine/first.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("#:schema ../case.schema.json\n"), "{text}");
    assert!(specs.path().join("case.schema.json").is_file());
    let out = harness().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = harness_on(specs.path()).arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 passed, 0 failed"),
        "{out:?}"
    );
    for (id, says) in [
        ("mine/first", "exists already"),
        ("first", "is not a case id"),
    ] {
        let out = harness_on(specs.path()).args(["new", id]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{out:?}"
        );
    }
}
