//! The command line as README.md documents it: the ready line, and bad configuration → a message
//! naming the problem and exit code 2.

mod support;

use rstest::rstest;
use support::{run_to_end, Options};

#[rstest]
fn ready_line_names_address_master_and_mpm(#[values("prefork", "worker", "event")] mpm: &str) {
    let server = Options::new(mpm).set("StartServers", 1).start();
    assert_ne!(server.addr.port(), 0, "port 0 must be resolved");
    assert_eq!(server.ready_mpm, mpm);
    assert!(!support::process_gone(server.master));
    let r = server.get("/");
    assert_eq!(r.status, 200);
    assert!(r.header("X-Served-By").unwrap().contains("slot="));
}

#[rstest]
#[case::unknown_directive(&["--set", "Frobnicate=1"], "Frobnicate: unknown directive")]
#[case::bad_duration(&["--set", "KeepAliveTimeout=soon"], "KeepAliveTimeout")]
#[case::bad_on_off(&["--set", "KeepAlive=maybe"], "must be On or Off")]
#[case::wrong_mpm(&["--set", "MinSpareServers=3"], "not a directive of the worker MPM")]
#[case::bad_fault(&["--set", "FaultChildStart=crash:kill"], "unknown signal `kill`")]
#[case::not_directive_value(&["--set", "Timeout"], "not Directive=value")]
fn bad_configuration_exits_2(#[case] args: &[&str], #[case] message: &'static str) {
    let out = run_to_end(
        ["--mpm", "worker", "--listen", "127.0.0.1:0"]
            .iter()
            .chain(args),
    );
    assert_eq!(out.status, out.exited(2), "{out:?}");
    let stderr = &out.stderr;
    assert!(stderr.contains(message), "stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "no ready line on a bad configuration"
    );
}

#[test]
fn bad_configuration_file_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("httpd.conf");
    std::fs::write(&path, "# test\nKeepAlive On\n\nMaxKeepAliveRequests many\n").unwrap();
    let out = run_to_end(
        ["--mpm", "prefork", "--listen", "127.0.0.1:0", "--config"]
            .map(std::ffi::OsStr::new)
            .into_iter()
            .chain([path.as_os_str()]),
    );
    assert_eq!(out.status, out.exited(2), "{out:?}");
    let stderr = &out.stderr;
    let expected = format!(
        "{}:4: MaxKeepAliveRequests: `many` is not a whole number",
        path.display()
    );
    assert!(stderr.contains(&expected), "stderr: {stderr}");
}

/// mod_ssl's files are checked as they are read: a file that holds no certificate is named with
/// its line; a key that does not serve the certificate names both files.
#[test]
fn bad_tls_files_are_named_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    let cert_file = write("cert.pem", &cert.cert.pem());
    let key_file = write("key.pem", &cert.key_pair.serialize_pem());
    let other_key = write("other.pem", &other.serialize_pem());
    let start = |conf: String| {
        let path = write("httpd.conf", &conf);
        run_to_end(
            ["--mpm", "event", "--listen", "127.0.0.1:0", "--config"]
                .map(std::ffi::OsStr::new)
                .into_iter()
                .chain([path.as_os_str()]),
        )
    };

    let out = start(format!(
        "SSLEngine on\nSSLCertificateFile {}\n",
        key_file.display()
    ));
    assert_eq!(out.status, out.exited(2), "{out:?}");
    let expected = format!(
        "httpd.conf:2: SSLCertificateFile: no certificate (PEM) in {}",
        key_file.display()
    );
    assert!(out.stderr.contains(&expected), "stderr: {}", out.stderr);

    let out = start(format!(
        "SSLEngine on\nSSLCertificateFile {}\nSSLCertificateKeyFile {}\n",
        cert_file.display(),
        other_key.display()
    ));
    assert_eq!(out.status, out.exited(2), "{out:?}");
    let expected = format!(
        "the key in {} does not serve the certificate in {}",
        other_key.display(),
        cert_file.display()
    );
    assert!(out.stderr.contains(&expected), "stderr: {}", out.stderr);

    let out = start("SSLEngine on\n".into());
    assert_eq!(out.status, out.exited(2), "{out:?}");
    assert!(
        out.stderr.contains("SSLCertificateFile"),
        "stderr: {}",
        out.stderr
    );
}

#[test]
fn missing_config_file_exits_2() {
    let out = run_to_end(["--mpm", "event", "--config", "/nonexistent/refhttpd.conf"]);
    assert_eq!(out.status, out.exited(2), "{out:?}");
}

#[test]
fn unknown_mpm_is_a_usage_error() {
    let out = run_to_end(["--mpm", "winnt"]);
    assert_eq!(out.status, out.exited(2), "{out:?}");
}

#[test]
fn config_file_and_set_combine_set_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("httpd.conf");
    std::fs::write(&path, "StartServers 1\nMaxKeepAliveRequests 7\n").unwrap();
    let server = Options::new("worker")
        .config(&path)
        .set("MaxKeepAliveRequests", 2)
        .start();
    let mut c = server.connect();
    let first = c.get_asking_keep_alive("/").unwrap();
    assert_eq!(first.header("Keep-Alive"), Some("timeout=5, max=2"));
    // Kept alive without a token: HTTP/1.1's default, not announced (as Apache).
    let second = c.get("/").unwrap();
    assert_eq!(
        (second.header("Keep-Alive"), second.header("Connection")),
        (None, None)
    );
    let third = c.get("/").unwrap();
    assert!(
        third.closes(),
        "the 3rd request (2 after the first) is the last: {third:?}"
    );
}
