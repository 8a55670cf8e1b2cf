//! `stagecraft serve` for real: the binary with the demo company and a manual clock,
//! over a socket. A rep signs in, creates a deal, is refused a move with reasons; an
//! admin moves the clock three days on; the deal's SLA breach and escalation are in
//! its history; SIGTERM stops the server cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// 2026-11-30 (a Monday) 10:00 in China, a normal working day.
const MONDAY_10AM: &str = "2026-11-30T10:00:00+08:00";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Kills the server if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on its own connection; the status and the JSON body.
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    stream.write_all(format!("{head}\r\n{body}").as_bytes()).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn login(addr: SocketAddr, user: &str) -> String {
    let (status, body) = call(
        addr,
        "POST",
        "/api/session",
        None,
        Some(json!({"username": user, "password": "stagecraft"})),
    );
    assert_eq!(status, 200, "{user} signs in: {body}");
    body["token"].as_str().expect("token").to_owned()
}

/// The lines a stream prints, as they come.
fn lines_of(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    received
}

/// Starts `stagecraft serve --demo --clock manual` on a free port over `packs`; returns
/// the server, its address, what it printed before it was ready, the rest of its
/// standard output and its standard error.
fn serve(
    data: &Path,
    packs: &[PathBuf],
) -> (Running, SocketAddr, Vec<String>, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    let child = Command::new(env!("CARGO_BIN_EXE_stagecraft"))
        .args(["serve", "--demo", "--clock", "manual", "--addr", "127.0.0.1:0", "--data"])
        .arg(data)
        .arg("--packs")
        .args(packs)
        // The demo company is found from the repository, as after a fresh clone.
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut server = Running(child);
    let received = lines_of(server.0.stdout.take().expect("stdout"));
    let errors = lines_of(server.0.stderr.take().expect("stderr"));
    // Port 0 lets the system choose a free port; the ready line names it.
    let mut printed = Vec::new();
    let addr: SocketAddr = loop {
        let line = received.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
            panic!("no ready line; the server printed:\n{}", printed.join("\n"))
        });
        printed.push(line.clone());
        if let Some(rest) = line.strip_prefix("stagecraft listening on http://") {
            assert!(rest.ends_with(&format!("(packs: 3, data: {})", data.display())), "{line}");
            break rest.split(' ').next().and_then(|addr| addr.parse().ok()).expect("an address");
        }
    };
    (server, addr, printed, received, errors)
}

#[test]
fn serve_the_demo_company_move_the_clock_and_stop() {
    let data = tempfile::tempdir().expect("temp dir");
    let repo = repo();
    let (mut server, addr, printed, received, _errors) =
        serve(&data.path().join("data"), &[repo.join("flows"), repo.join("schemas")]);
    let output = printed.join("\n");
    assert!(output.contains("demo company created: 24 people"), "{output}");
    assert!(output.contains("password for everyone: stagecraft"), "{output}");
    assert!(output.contains("rep01"), "{output}");

    let deadline = Instant::now() + Duration::from_secs(30);
    while call(addr, "GET", "/healthz", None, None) != (200, json!({"status": "ok"})) {
        assert!(Instant::now() < deadline, "/healthz never answered");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Monday morning.
    let admin = login(addr, "admin");
    let (status, moved) =
        call(addr, "POST", "/api/admin/clock", Some(&admin), Some(json!({"now": MONDAY_10AM})));
    assert_eq!(status, 200, "{moved}");

    // rep01 creates a customer and a deal, and may not skip ahead.
    let rep = login(addr, "rep01");
    let (status, customer) = call(
        addr,
        "POST",
        "/api/records/customer",
        Some(&rep),
        Some(json!({"fields": {"name": "常州精密模具有限公司"}})),
    );
    assert_eq!(status, 201, "{customer}");
    let fields = json!({
        "name": "模具车间自动化",
        "customer": customer["id"],
        "amount": 880000,
        "expected_close_date": "2027-03-31",
    });
    let (status, deal) =
        call(addr, "POST", "/api/records/opportunity", Some(&rep), Some(json!({"fields": fields})));
    assert_eq!(status, 201, "{deal}");
    let id = deal["id"].as_str().expect("id").to_owned();
    assert_eq!(deal["flow"]["stage"], "lead");
    let (status, refused) = call(
        addr,
        "POST",
        &format!("/api/records/opportunity/{id}/transitions"),
        Some(&rep),
        Some(json!({"to": "first_contact"})),
    );
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["reasons"][0]["kind"], "field");
    assert!(
        refused["reasons"][0]["message_zh"].as_str().is_some_and(|m| !m.is_empty()),
        "{refused}"
    );

    // Three days on: the two-working-day SLA has run out and escalated.
    let admin = login(addr, "admin");
    let (status, moved) =
        call(addr, "POST", "/api/admin/clock", Some(&admin), Some(json!({"advance": "3d"})));
    assert_eq!(status, 200, "{moved}");
    assert!(moved["timers_fired"].as_u64().is_some_and(|fired| fired >= 2), "{moved}");
    // rep01's session ended meanwhile (idle for more than 8 hours).
    let (status, _) = call(addr, "GET", "/api/tasks", Some(&rep), None);
    assert_eq!(status, 401);
    let rep = login(addr, "rep01");
    let (status, events) =
        call(addr, "GET", &format!("/api/records/opportunity/{id}/events"), Some(&rep), None);
    assert_eq!(status, 200, "{events}");
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"sla_breached"), "{kinds:?}");
    let escalated = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|event| event["kind"] == "escalated")
        .unwrap_or_else(|| panic!("no escalation: {kinds:?}"));
    assert_eq!(escalated["data"]["notified"], json!(["rep01", "mgr-east"]));

    // SIGTERM: the server finishes and says so.
    let pid = server.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = received.iter().collect();
    assert_eq!(rest.last().map(String::as_str), Some("stagecraft stopped"), "{rest:#?}");
}

#[test]
fn broken_packs_are_shown_and_the_server_does_not_start() {
    let data = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_stagecraft"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(data.path().join("data"))
        .arg("--packs")
        .arg(repo().join("tests/fixtures/broken/01-unknown-key"))
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("error[SC0101]"), "{stdout}");
    assert!(!stdout.contains("listening"), "{stdout}");
}

/// Copies a folder tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder").map(|e| e.expect("entry")) {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Waits until a line containing `text` arrives; the lines seen until then.
fn wait_for_line(lines: &mpsc::Receiver<String>, text: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            seen.push(line.clone());
            if line.contains(text) {
                return seen;
            }
        }
    }
    panic!("no line with {text:?}; seen:\n{}", seen.join("\n"));
}

#[test]
fn edited_packs_are_reloaded_and_a_broken_edit_keeps_the_running_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo();
    copy_tree(&repo.join("flows"), &dir.path().join("flows"));
    copy_tree(&repo.join("schemas"), &dir.path().join("schemas"));
    let packs = [dir.path().join("flows"), dir.path().join("schemas")];
    let (_server, addr, _, _, errors) = serve(&dir.path().join("data"), &packs);
    let rep = login(addr, "rep01");
    let forms = || {
        let (status, forms) = call(addr, "GET", "/api/forms", Some(&rep), None);
        assert_eq!(status, 200, "{forms}");
        forms.to_string()
    };
    assert!(forms().contains("\"客户\""));

    // Operations staff rename the customer form: the server picks it up.
    let customer = dir.path().join("schemas/sales/customer.json");
    let text = std::fs::read_to_string(&customer).expect("read");
    let renamed = text.replacen("\"zh-CN\": \"客户\"", "\"zh-CN\": \"客户档案\"", 1);
    assert_ne!(renamed, text, "the form title is where the test expects it");
    std::fs::write(&customer, &renamed).expect("write");
    wait_for_line(&errors, "reloaded the packs");
    assert!(forms().contains("客户档案"));

    // A broken edit is refused with its diagnostics; the last good version serves on.
    std::fs::write(&customer, renamed.replacen("\"type\": \"object\"", "\"type\": \"objekt\"", 1))
        .expect("write");
    let seen = wait_for_line(&errors, "the running definitions stay");
    assert!(seen.iter().any(|line| line.contains("customer.json")), "{seen:#?}");
    assert!(forms().contains("客户档案"));
    let (status, _) = call(addr, "GET", "/healthz", None, None);
    assert_eq!(status, 200);
}
