//! The pages in a real browser: `stagecraft serve --demo --clock manual` on a free
//! port, Debian's Chromium driven through chromedriver (WebDriver). A rep signs in,
//! opens the new-customer form, sends it without the required name, sees the message
//! beside that field, fixes it, and lands on the new customer's page.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages `chromium`
//! and `chromium-driver`). Without them the test says it was skipped, unless `CI` is
//! set: CI must run it, so there it fails.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Stops a child process when the test ends, also when it fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether the browser is there; `false` means the test is skipped (never on CI).
fn browser_installed() -> bool {
    let missing: Vec<&str> =
        [CHROMIUM, CHROMEDRIVER].into_iter().filter(|path| !Path::new(path).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "the browser test needs {}; CI must install them: \
             apt-get install -y --no-install-recommends chromium chromium-driver",
            missing.join(" and ")
        );
    }
    println!("skipped: install chromium chromium-driver (missing {})", missing.join(", "));
    false
}

/// Starts the real binary on a port the system picks; its address.
fn start_server(data: &Path) -> (Running, SocketAddr) {
    let repo = repo();
    let child = Command::new(env!("CARGO_BIN_EXE_stagecraft"))
        .args(["serve", "--demo", "--clock", "manual", "--addr", "127.0.0.1:0", "--data"])
        .arg(data)
        .arg("--packs")
        .args([repo.join("flows"), repo.join("schemas")])
        .current_dir(&repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server");
    let mut server = Running(child);
    let stdout = server.0.stdout.take().expect("stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let addr = loop {
        let line = received.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
            panic!("no ready line; the server printed:\n{}", printed.join("\n"))
        });
        printed.push(line.clone());
        if let Some(rest) = line.strip_prefix("stagecraft listening on http://") {
            break rest.split(' ').next().and_then(|addr| addr.parse().ok()).expect("an address");
        }
    };
    (server, addr)
}

/// Starts chromedriver on a free port; its URL.
fn start_chromedriver() -> (Running, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port");
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start chromedriver");
    let driver = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (driver, format!("http://127.0.0.1:{port}"))
}

async fn connect(driver: &str, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), "chrome".into());
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=412,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    // chromedriver listens on the loopback over plain HTTP: no TLS connector needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(driver)
        .await
        .expect("a browser session")
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no {css}: {error}"))
        .text()
        .await
        .expect("its text")
}

async fn fill(client: &Client, css: &str, text: &str) {
    let input = client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
    input.clear().await.expect("clear");
    input.send_keys(text).await.expect("type");
}

async fn value_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .prop("value")
        .await
        .expect("a value")
        .unwrap_or_default()
}

#[tokio::test]
async fn a_rep_fixes_a_mistake_in_the_new_customer_form_in_chromium() {
    if !browser_installed() {
        return;
    }
    let folder = tempfile::tempdir().expect("temp dir");
    let (_server, addr) = start_server(&folder.path().join("data"));
    let (_driver, driver_url) = start_chromedriver();
    let client = connect(&driver_url, &folder.path().join("profile")).await;
    let base = format!("http://{addr}");
    let outcome = async {
        // Not signed in: the login page, which brings the browser back afterwards.
        client.goto(&format!("{base}/ui/records/customer/new")).await.expect("open the form");
        assert_eq!(text_of(&client, "h1").await, "登录");
        fill(&client, "#username", "rep01").await;
        fill(&client, "#password", "stagecraft").await;
        client
            .find(Locator::Css("#sign-in"))
            .await
            .expect("button")
            .click()
            .await
            .expect("sign in");

        // The new-customer form; a mistake: the required name left empty.
        assert_eq!(text_of(&client, "h1").await, "新建客户");
        fill(&client, "#f-short_name", "杭机").await;
        client.find(Locator::Css("#save")).await.expect("button").click().await.expect("save");
        let message = text_of(&client, "#f-name-error").await;
        assert!(message.contains("请填写「客户名称」"), "{message}");
        assert_eq!(value_of(&client, "#f-short_name").await, "杭机", "what was typed is kept");
        // The message is inside the name's own field block.
        let field = client.find(Locator::Css("#f-name-field")).await.expect("the name field");
        let inside = field.find(Locator::Css(".error")).await.expect("a message in the field");
        assert!(inside.text().await.expect("text").contains("客户名称"));

        // Fixed: the customer's page shows what was entered.
        fill(&client, "#f-name", "杭州精工机床有限公司").await;
        client.find(Locator::Css("#save")).await.expect("button").click().await.expect("save");
        let title = text_of(&client, "#record-title").await;
        assert!(title.contains("杭州精工机床有限公司"), "{title}");
        let url = client.current_url().await.expect("url");
        assert!(url.path().starts_with("/ui/records/customer/"), "{url}");
        assert_eq!(text_of(&client, "#value-short_name").await, "杭机");

        // The language switch.
        client
            .find(Locator::Css("#switch-language"))
            .await
            .expect("switch")
            .click()
            .await
            .expect("click");
        assert_eq!(text_of(&client, "#fields h2").await.trim_end_matches("Edit").trim(), "Details");
    }
    .await;
    let _ = client.close().await;
    outcome
}
