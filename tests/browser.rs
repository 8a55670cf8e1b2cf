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

/// The text of the first element matching `css`, waiting up to 20 s for it. A page
/// that is replaced meanwhile (a form was sent) makes the element stale: then it is
/// looked up again on the new page.
async fn text_of(client: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let element = client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no {css}: {error}"));
        match element.text().await {
            Ok(text) => return text,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the text of {css}: {error}"),
        }
    }
}

/// Waits until the page's heading starts with `expected` (some headings end with a
/// count; the browser may still be on the page it leaves for a moment after a click).
async fn wait_heading(client: &Client, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let heading = text_of(client, "h1").await;
        if heading.starts_with(expected) {
            return;
        }
        assert!(Instant::now() < deadline, "the heading stayed {heading:?}, not {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
        wait_heading(&client, "新建客户").await;
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

/// Where screenshots of the pages are kept after a run (test artifacts).
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).expect("a screenshot folder");
    dir
}

async fn sign_in(client: &Client, base: &str, user: &str, next: &str) {
    client.goto(&format!("{base}/ui/login?next={next}")).await.expect("open the login page");
    fill(client, "#username", user).await;
    fill(client, "#password", "stagecraft").await;
    client.find(Locator::Css("#sign-in")).await.expect("button").click().await.expect("sign in");
}

async fn sign_out(client: &Client) {
    client.find(Locator::Css("#sign-out")).await.expect("button").click().await.expect("sign out");
}

/// Opens a page, checks it is the page and not an error, and saves a screenshot.
async fn visit(client: &Client, base: &str, path: &str, shot: &str) -> String {
    client.goto(&format!("{base}{path}")).await.unwrap_or_else(|e| panic!("open {path}: {e}"));
    let heading = text_of(client, "h1").await;
    let error = client.find(Locator::Css("#error-message")).await.ok();
    if let Some(error) = error {
        panic!("{path} answered an error page: {}", error.text().await.unwrap_or_default());
    }
    screenshot(client, shot).await;
    heading
}

/// The id in an element id like `pool-item-<id>`.
async fn id_after(client: &Client, css: &str, prefix: &str) -> String {
    let element = client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no {css}: {error}"));
    let id = element.attr("id").await.expect("an id").unwrap_or_default();
    id.strip_prefix(prefix).unwrap_or_else(|| panic!("{id} starts with {prefix}")).to_owned()
}

async fn click(client: &Client, css: &str) {
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// Waits until nothing matches `css` (the page that had it was replaced).
async fn wait_gone(client: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.find(Locator::Css(css)).await.is_ok() {
        assert!(Instant::now() < deadline, "{css} is still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(client: &Client, shot: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(screenshot_dir().join(format!("{shot}.png")), png).expect("save it");
}

/// A card on the board with an open exit: its record id and the stage it stands in.
async fn movable_card(client: &Client) -> (String, String) {
    text_of(client, "#board").await;
    for card in client.find_all(Locator::Css("article.card")).await.expect("cards") {
        if card.find(Locator::Css("form button")).await.is_err() {
            continue;
        }
        let id = card.attr("id").await.expect("an id").unwrap_or_default();
        let column = card.find(Locator::XPath("..")).await.expect("its column");
        let stage = column.attr("id").await.expect("an id").unwrap_or_default();
        return (id, stage);
    }
    panic!("no card on the board has an open exit");
}

/// A new user's day from the pages alone, in Chromium: the walkthrough, to-dos, a
/// customer claimed from the pool, a visit logged, the customer's overview, a deal
/// moved on the board, a manager's approval, the dashboard and the relationship
/// graph. Every page is saved as a screenshot under `target/tmp/screenshots`.
#[tokio::test]
async fn a_day_of_work_from_the_pages_alone_in_chromium() {
    if !browser_installed() {
        return;
    }
    let folder = tempfile::tempdir().expect("temp dir");
    let (_server, addr) = start_server(&folder.path().join("data"));
    let (_driver, driver_url) = start_chromedriver();
    let client = connect(&driver_url, &folder.path().join("profile")).await;
    let base = format!("http://{addr}");
    let outcome = async {
        // First sign-in: the walkthrough, once.
        sign_in(&client, &base, "rep01", "/ui").await;
        wait_heading(&client, "新手引导").await;
        screenshot(&client, "01-welcome").await;
        click(&client, "#welcome-done").await;
        wait_heading(&client, "工作台").await;

        let todos = visit(&client, &base, "/todos", "02-todos").await;
        assert!(todos.starts_with("我的待办"), "{todos}");

        // Claim a customer from the pool; it moves to "mine".
        visit(&client, &base, "/pool", "03-pool").await;
        let customer = id_after(&client, "[id^='pool-item-']", "pool-item-").await;
        click(&client, &format!("#pool-item-{customer} button")).await;
        text_of(&client, "#pool-notice").await;
        text_of(&client, &format!("#mine-item-{customer}")).await;
        screenshot(&client, "04-pool-claimed").await;

        // Log yesterday's visit to that customer.
        let yesterday = (chrono::Utc::now() + chrono::Duration::hours(8)
            - chrono::Duration::days(1))
        .format("%Y-%m-%dT10:00");
        let summary =
            "%E6%8B%9C%E8%AE%BF%EF%BC%8C%E4%BA%86%E8%A7%A3%E9%87%87%E8%B4%AD%E8%AE%A1%E5%88%92";
        client
            .goto(&format!(
                "{base}/ui/records/interaction/new?customer={customer}&kind=visit&status=done\
                 &happened_at={yesterday}&summary={summary}"
            ))
            .await
            .expect("open the visit form");
        click(&client, "#save").await;
        text_of(&client, "#record-title").await;
        screenshot(&client, "05-visit-logged").await;

        // The customer's overview holds the visit.
        visit(&client, &base, &format!("/customers/{customer}"), "06-customer-360").await;
        let timeline = text_of(&client, "#timeline").await;
        assert!(!timeline.trim().is_empty());

        // A new deal for that customer: the four fields to start, and the region
        // that the first move needs.
        let close = (chrono::Utc::now() + chrono::Duration::days(45)).format("%Y-%m-%d");
        client
            .goto(&format!(
                "{base}/ui/records/opportunity/new?customer={customer}&name=%E6%96%B0%E4%BA%A7%E7%BA%BF\
                 &amount=380000&expected_close_date={close}&region=east"
            ))
            .await
            .expect("open the deal form");
        click(&client, "#save").await;
        text_of(&client, "#record-title").await;

        // The board: a deal moves through an open exit to another column.
        visit(&client, &base, "/board", "07-board").await;
        let (card, column) = movable_card(&client).await;
        click(&client, &format!("#{card} form button")).await;
        wait_gone(&client, &format!("#{column} #{card}")).await;
        screenshot(&client, "08-board-moved").await;

        visit(&client, &base, "/dashboard", "09-dashboard-rep").await;
        visit(&client, &base, "/graph", "10-graph-rep").await;
        text_of(&client, "#graph-image").await;
        visit(&client, &base, "/suggestions", "11-suggestions").await;
        sign_out(&client).await;
        wait_heading(&client, "登录").await;

        // The regional manager approves from the to-dos.
        sign_in(&client, &base, "mgr-east", "/todos").await;
        wait_heading(&client, "我的待办").await;
        screenshot(&client, "12-todos-manager").await;
        click(&client, "#todos a[href*='#approval']").await;
        let approval = id_after(&client, ".approval:has(button[value='approve'])", "").await;
        click(&client, &format!("#{approval} button[value='approve']")).await;
        wait_gone(&client, &format!("#{approval} button[value='approve']")).await;
        screenshot(&client, "13-approved").await;

        visit(&client, &base, "/dashboard", "14-dashboard-manager").await;
        visit(&client, &base, "/dashboard/adoption", "15-adoption").await;
        visit(&client, &base, "/graph", "16-graph-manager").await;
        visit(&client, &base, "/audit", "17-audit").await;
        sign_out(&client).await;
        wait_heading(&client, "登录").await;

        sign_in(&client, &base, "admin", "/import").await;
        wait_heading(&client, "数据导入").await;
        screenshot(&client, "18-import").await;
    }
    .await;
    let _ = client.close().await;
    outcome
}
