//! The HTML pages, called in-process through the router (no socket), on the shipped
//! packs with the demo company: signing in, CSRF, the generated forms and their
//! messages, record pages, who sees what, escaping and languages.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use stagecraft_server::{AppState, ClockChoice, Config, PasswordCost, app};
use tower::ServiceExt;

// The workbench's pages, one module each.
mod audit;
mod board;
mod customer;
mod dashboard;
mod graph;
mod import;
mod onboarding;
mod pool;
mod suggestions;
mod todos;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Harness {
    app: Router,
    state: AppState,
    _dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
    }

    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    /// The value a `Set-Cookie` gives a cookie.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies().iter().find_map(|cookie| {
            let (pair, _) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
    }

    #[track_caller]
    fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "{}", self.body);
        self
    }

    /// An HTML page with the page policy.
    #[track_caller]
    fn page(self, status: StatusCode) -> Self {
        let answer = self.expect(status);
        assert!(answer.header("content-type").starts_with("text/html"), "{answer:?}");
        let csp = answer.header("content-security-policy");
        assert!(csp.contains("style-src 'self'") && csp.contains("form-action 'self'"), "{csp}");
        assert!(!csp.contains("script-src"), "pages run no scripts: {csp}");
        assert_eq!(answer.header("x-frame-options"), "DENY");
        assert!(answer.body.contains("name=\"viewport\""));
        answer
    }

    /// The value of the first hidden `_csrf` field.
    fn csrf(&self) -> String {
        hidden(&self.body, "_csrf").expect("a csrf field")
    }
}

/// The value of a hidden input.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A signed-in browser: its session cookie and a page's CSRF token.
struct Browser {
    cookie: String,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config {
            data: dir.path().join("data"),
            packs: vec![repo().join("flows"), repo().join("schemas")],
            demo: Some(repo().join("examples/demo")),
            clock: ClockChoice::Manual,
            password_cost: PasswordCost::Low,
            ..Config::default()
        };
        let (state, _) = match AppState::open(&config) {
            Ok(opened) => opened,
            Err(error) => panic!("the server must start: {error}"),
        };
        Harness { app: app(state.clone()), state, _dir: dir }
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        Answer { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&self, uri: &str, cookie: Option<&str>) -> Answer {
        let mut request = Request::builder().method(Method::GET).uri(uri);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        self.send(request.body(Body::empty()).expect("request")).await
    }

    async fn post(&self, uri: &str, cookie: Option<&str>, pairs: &[(&str, &str)]) -> Answer {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        self.send(request.body(Body::from(form_body(pairs))).expect("request")).await
    }

    /// Signs in through the login form, as a browser does.
    async fn sign_in(&self, user: &str) -> Browser {
        let form = self.get("/ui/login", None).await.page(StatusCode::OK);
        let login_cookie = form.cookie("stagecraft_login_csrf").expect("a login cookie");
        let cookie = format!("stagecraft_login_csrf={login_cookie}");
        let answer = self
            .post(
                "/ui/login",
                Some(&cookie),
                &[
                    ("_csrf", &form.csrf()),
                    ("username", user),
                    ("password", "stagecraft"),
                    ("next", "/ui"),
                ],
            )
            .await
            .expect(StatusCode::SEE_OTHER);
        assert_eq!(answer.header("location"), "/ui");
        let session = answer.cookie("stagecraft_session").expect("a session cookie");
        let browser = Browser { cookie: format!("stagecraft_session={session}") };
        // The first visit of the workbench shows the walkthrough (once); tests start
        // after it.
        self.get("/ui", Some(&browser.cookie)).await;
        browser
    }

    /// The CSRF token of a signed-in browser, from its workbench.
    async fn csrf(&self, browser: &Browser) -> String {
        self.get("/ui", Some(&browser.cookie)).await.page(StatusCode::OK).csrf()
    }

    /// One round of the notification worker: the outbox rows to inboxes.
    async fn deliver(&self) {
        let notifier = stagecraft_notify::Notifier::new(
            self.state.engine().clone(),
            self.state.notify_config().clone(),
        )
        .expect("a notifier");
        notifier.round().await.expect("a delivery round");
    }

    /// How many of a person's notifications are unread, from the inbox itself.
    fn unread(&self, user: &str) -> usize {
        stagecraft_notify::inbox::unread_count(self.state.engine().store().as_ref(), user)
            .expect("the unread count")
    }

    /// A person's notifications, newest first.
    fn inbox(&self, user: &str) -> Vec<stagecraft_notify::InboxItem> {
        stagecraft_notify::inbox::list(self.state.engine().store().as_ref(), user, None, 200)
            .expect("the inbox")
            .items
    }

    /// Creates a customer through the form; the record page's path.
    async fn new_customer(&self, browser: &Browser, name: &str) -> String {
        let csrf = self.csrf(browser).await;
        let answer = self
            .post(
                "/ui/records/customer",
                Some(&browser.cookie),
                &[("_csrf", &csrf), ("name", name), ("region", "east"), ("level", "a")],
            )
            .await
            .expect(StatusCode::SEE_OTHER);
        let location = answer.header("location").to_owned();
        assert!(location.starts_with("/ui/records/customer/"), "{location}");
        location
    }
}

#[tokio::test]
async fn the_root_and_pages_without_a_session_lead_to_the_login_page() {
    let harness = Harness::new();
    let root = harness.get("/", None).await.expect(StatusCode::SEE_OTHER);
    assert_eq!(root.header("location"), "/ui");
    let home = harness.get("/ui", None).await.expect(StatusCode::SEE_OTHER);
    assert_eq!(home.header("location"), "/ui/login?next=/ui");
    let record =
        harness.get("/ui/records/customer/new?x=1", None).await.expect(StatusCode::SEE_OTHER);
    assert_eq!(record.header("location"), "/ui/login?next=/ui/records/customer/new%3Fx%3D1");
    // The stylesheet is served from here, with the JSON API's strict headers.
    let css = harness.get("/ui/static/app.css", None).await.expect(StatusCode::OK);
    assert!(css.header("content-type").starts_with("text/css"));
    assert!(css.body.contains("@media (max-width: 600px)"));
    // JSON answers keep the policy that allows nothing.
    let health = harness.get("/healthz", None).await.expect(StatusCode::OK);
    assert!(health.header("content-security-policy").starts_with("default-src 'none'"));
    assert!(!health.header("content-security-policy").contains("style-src"));
}

#[tokio::test]
async fn the_login_page_signs_in_and_rotates_the_session() {
    let harness = Harness::new();
    let page =
        harness.get("/ui/login?next=/ui/records/customer/new", None).await.page(StatusCode::OK);
    assert!(page.body.contains("<h1>登录</h1>"), "{}", page.body);
    assert!(page.body.contains("value=\"/ui/records/customer/new\""));
    let login_cookie = page.cookie("stagecraft_login_csrf").expect("cookie");
    assert!(page.cookies().iter().any(|c| c.contains("SameSite=Strict") && c.contains("HttpOnly")));
    let cookie = format!("stagecraft_login_csrf={login_cookie}");

    // A wrong password: the message, the username kept.
    let wrong = harness
        .post(
            "/ui/login",
            Some(&cookie),
            &[
                ("_csrf", &page.csrf()),
                ("username", "rep01"),
                ("password", "nope"),
                ("next", "/ui"),
            ],
        )
        .await
        .page(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("用户名或密码不正确"), "{}", wrong.body);
    assert!(wrong.body.contains("value=\"rep01\""));
    // Empty fields: a message beside each.
    let empty = harness
        .post(
            "/ui/login",
            Some(&cookie),
            &[("_csrf", &page.csrf()), ("username", ""), ("password", "")],
        )
        .await
        .page(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.body.contains("id=\"username-error\">请填写用户名"), "{}", empty.body);
    assert!(empty.body.contains("id=\"password-error\">请填写密码"));
    // Without the cookie's token, or with another: refused.
    for token in ["", "0000"] {
        harness
            .post(
                "/ui/login",
                Some(&cookie),
                &[("_csrf", token), ("username", "rep01"), ("password", "stagecraft")],
            )
            .await
            .page(StatusCode::FORBIDDEN);
    }
    harness
        .post(
            "/ui/login",
            None,
            &[("_csrf", &page.csrf()), ("username", "rep01"), ("password", "stagecraft")],
        )
        .await
        .page(StatusCode::FORBIDDEN);

    // Signing in goes where `next` says (only to these pages), with a new session.
    let first = harness.sign_in("rep01").await;
    harness.get("/ui", Some(&first.cookie)).await.page(StatusCode::OK);
    let with_old = format!("{cookie}; {}", first.cookie);
    let answer = harness
        .post(
            "/ui/login",
            Some(&with_old),
            &[
                ("_csrf", &page.csrf()),
                ("username", "rep02"),
                ("password", "stagecraft"),
                ("next", "https://evil.example/"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(answer.header("location"), "/ui");
    let second = answer.cookie("stagecraft_session").expect("a new session");
    assert_ne!(format!("stagecraft_session={second}"), first.cookie);
    // The old session ended.
    harness.get("/ui", Some(&first.cookie)).await.expect(StatusCode::SEE_OTHER);
    // rep02's first visit of the workbench shows the walkthrough, once.
    let welcome = harness
        .get("/ui", Some(&format!("stagecraft_session={second}")))
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(welcome.header("location"), "/welcome");
    let home = harness
        .get("/ui", Some(&format!("stagecraft_session={second}")))
        .await
        .page(StatusCode::OK);
    assert!(home.body.contains("我的待办"));

    // Signing out needs the token too, and ends the session.
    let browser = Browser { cookie: format!("stagecraft_session={second}") };
    harness
        .post("/ui/logout", Some(&browser.cookie), &[("_csrf", "wrong")])
        .await
        .page(StatusCode::FORBIDDEN);
    let csrf = harness.csrf(&browser).await;
    let out = harness
        .post("/ui/logout", Some(&browser.cookie), &[("_csrf", &csrf)])
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(out.header("location"), "/ui/login");
    harness.get("/ui", Some(&browser.cookie)).await.expect(StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_form_that_posts_needs_the_session_csrf_token() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let record = harness.new_customer(&rep, "华东精密机械有限公司").await;
    let other = harness.sign_in("rep01").await;
    let other_token = harness.csrf(&other).await;
    for (uri, fields) in [
        ("/ui/records/customer".to_owned(), vec![("name", "x")]),
        (format!("{record}/edit"), vec![("name", "x"), ("_version", "1")]),
        (format!("{record}/transitions"), vec![("to", "lost")]),
    ] {
        let missing =
            harness.post(&uri, Some(&rep.cookie), &fields).await.page(StatusCode::FORBIDDEN);
        assert!(missing.body.contains("表单已过期"), "{uri}: {}", missing.body);
        // Another session's token does not do either.
        let mut with_other = fields.clone();
        with_other.push(("_csrf", &other_token));
        harness.post(&uri, Some(&rep.cookie), &with_other).await.page(StatusCode::FORBIDDEN);
    }
    // Nothing changed.
    let page = harness.get(&record, Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains("华东精密机械有限公司"));
}

#[tokio::test]
async fn a_missing_field_comes_back_beside_its_input_with_the_values_kept() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let customer = harness.new_customer(&rep, "苏州汽配厂").await;
    let customer_id = customer.rsplit('/').next().expect("id").to_owned();

    let form =
        harness.get("/ui/records/opportunity/new", Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(form.body.contains("新建商机"));
    // The generated inputs: a link with the customers rep01 sees, money, a date, a
    // textarea, a select, radio buttons, a date-time, a file.
    assert!(
        form.body.contains(&format!("<option value=\"{customer_id}\">苏州汽配厂</option>")),
        "{}",
        form.body
    );
    assert!(form.body.contains("list=\"f-customer-choices\""));
    assert!(form.body.contains("inputmode=\"decimal\""));
    assert!(form.body.contains("type=\"date\" id=\"f-expected_close_date\""));
    assert!(form.body.contains("<textarea id=\"f-purchase_motivation\""));
    assert!(form.body.contains("<select id=\"f-region\""));
    assert!(form.body.contains("type=\"radio\" id=\"f-loss_reason-0\""));
    assert!(form.body.contains("type=\"datetime-local\""));
    assert!(form.body.contains("type=\"file\" id=\"f-needs_survey\""));
    assert!(form.body.contains("enctype=\"multipart/form-data\""));

    let csrf = form.csrf();
    let answer = harness
        .post(
            "/ui/records/opportunity",
            Some(&rep.cookie),
            &[
                ("_csrf", &csrf),
                ("name", ""),
                // A name typed in full picks the customer.
                ("customer", "苏州汽配厂"),
                ("amount", "1,200,000"),
                ("expected_close_date", "2026-12-31"),
                ("region", "east"),
                ("purchase_motivation", "产能扩张"),
            ],
        )
        .await
        .page(StatusCode::UNPROCESSABLE_ENTITY);
    let body = &answer.body;
    let error = body.find("id=\"f-name-error\"").expect("a message at the name");
    let input = body.find("id=\"f-name\"").expect("the name input");
    let next_field = body.find("id=\"f-customer-field\"").expect("the next field");
    assert!(input < error && error < next_field, "the message sits beside its input");
    assert!(body[error..next_field].contains("请填写「商机名称」"), "{}", &body[error..next_field]);
    assert!(body.contains("value=\"苏州汽配厂\""), "the typed values are kept");
    assert!(body.contains("value=\"1,200,000\""));
    assert!(body.contains("value=\"2026-12-31\""));
    assert!(body.contains(">产能扩张</textarea>"));
    assert!(body.contains("<option value=\"east\" selected>"));

    // Fixed: the deal is created and the browser goes to its page.
    let answer = harness
        .post(
            "/ui/records/opportunity",
            Some(&rep.cookie),
            &[
                ("_csrf", &csrf),
                ("name", "冲压线改造"),
                ("customer", "苏州汽配厂"),
                ("amount", "1,200,000"),
                ("expected_close_date", "2026-12-31"),
                ("region", "east"),
                ("meeting_scheduled_at", "2026-12-01T14:30"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let deal = answer.header("location").to_owned();
    let page = harness.get(&deal, Some(&rep.cookie)).await.page(StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("商机：冲压线改造"), "{body}");
    assert!(body.contains("¥1,200,000.00"));
    assert!(
        body.contains(&format!("<a href=\"/ui/records/customer/{customer_id}\">苏州汽配厂</a>"))
    );
    assert!(body.contains("2026-12-01 14:30"), "times in China's time");
    assert!(body.contains("id=\"stage-title\">线索获取</span>"));
    // The way on is open; the others say why not.
    assert!(body.contains("开始初步接触"));
    assert!(body.contains("请填写「丢单原因」"), "{body}");
    // History, newest first.
    let history = &body[body.find("id=\"history\"").expect("history")..];
    assert!(
        history.find("进入阶段：线索获取").expect("stage") < history.find("创建").expect("created")
    );
}

#[tokio::test]
async fn a_record_page_moves_the_record_and_shows_why_a_move_is_refused() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let customer = harness.new_customer(&rep, "无锡电子").await;
    let customer_id = customer.rsplit('/').next().expect("id").to_owned();
    let csrf = harness.csrf(&rep).await;
    let deal = harness
        .post(
            "/ui/records/opportunity",
            Some(&rep.cookie),
            &[
                ("_csrf", &csrf),
                ("name", "贴片线"),
                ("customer", &customer_id),
                ("amount", "300000"),
                ("expected_close_date", "2026-12-31"),
                ("region", "east"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER)
        .header("location")
        .to_owned();
    // Lost needs a loss reason: refused, with the runtime's reason, on the page.
    let refused = harness
        .post(
            &format!("{deal}/transitions"),
            Some(&rep.cookie),
            &[("_csrf", &csrf), ("to", "lost")],
        )
        .await
        .page(StatusCode::CONFLICT);
    assert!(refused.body.contains("id=\"notices\""), "{}", refused.body);
    assert!(refused.body.contains("请填写「丢单原因」"));
    // Moving on is allowed.
    harness
        .post(
            &format!("{deal}/transitions"),
            Some(&rep.cookie),
            &[("_csrf", &csrf), ("to", "first_contact")],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let page = harness.get(&deal, Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains("id=\"stage-title\">初步接触</span>"));
    // The key actions of the stage, none done yet; the form ones link to a pre-filled form.
    assert!(page.body.contains("录入客户基本信息"), "{}", page.body);
    assert!(page.body.contains(&format!(
        "/ui/records/first_contact_record/new?opportunity&#x3D;{}",
        deal.rsplit('/').next().expect("id")
    )));
    assert!(page.body.contains("尚未完成关键动作"));
    assert!(page.body.contains("阶段：线索获取 → 初步接触"));

    // An edit names the version it was made on; filling the basic info does the first action.
    let edit = harness.get(&format!("{deal}/edit"), Some(&rep.cookie)).await.page(StatusCode::OK);
    let version = hidden(&edit.body, "_version").expect("a version");
    assert!(edit.body.contains("value=\"贴片线\""));
    let mut fields = vec![("_csrf", csrf.as_str()), ("_version", version.as_str())];
    let kept: Vec<(String, String)> =
        ["name", "customer", "amount", "expected_close_date", "region"]
            .iter()
            .map(|name| ((*name).to_owned(), hidden_input_value(&edit.body, name)))
            .collect();
    for (name, value) in &kept {
        fields.push((name.as_str(), value.as_str()));
    }
    fields.extend([
        ("contact_name", "王工"),
        ("contact_title", "设备部经理"),
        ("purchase_motivation", "扩产"),
    ]);
    harness
        .post(&format!("{deal}/edit"), Some(&rep.cookie), &fields)
        .await
        .expect(StatusCode::SEE_OTHER);
    let page = harness.get(&deal, Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains("class=\"done\""), "{}", page.body);
    assert!(page.body.contains("修改了："));
    // The same old version again is refused, the typed values kept.
    let stale = harness.post(&format!("{deal}/edit"), Some(&rep.cookie), &fields).await;
    assert!(
        stale.status == StatusCode::SEE_OTHER || stale.status == StatusCode::CONFLICT,
        "{stale:?}"
    );
}

/// The value of a visible input of an edit form.
fn hidden_input_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    html.find(&marker)
        .map(|start| {
            let start = start + marker.len();
            html[start..start + html[start..].find('"').unwrap_or(0)].to_owned()
        })
        .or_else(|| {
            // A select: the selected option.
            let select = html.find(&format!("<select id=\"f-{name}\""))?;
            let selected = html[select..].find(" selected>")? + select;
            let value_start = html[..selected].rfind("value=\"")? + 7;
            Some(html[value_start..selected - 1].to_owned())
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_rep_gets_404_on_another_reps_record_page() {
    let harness = Harness::new();
    let rep01 = harness.sign_in("rep01").await;
    let rep02 = harness.sign_in("rep02").await;
    let record = harness.new_customer(&rep01, "宁波模具").await;
    let page = harness.get(&record, Some(&rep02.cookie)).await.page(StatusCode::NOT_FOUND);
    assert!(page.body.contains("找不到该页面或记录"), "{}", page.body);
    assert!(!page.body.contains("宁波模具"));
    harness.get(&format!("{record}/edit"), Some(&rep02.cookie)).await.page(StatusCode::NOT_FOUND);
    let csrf = harness.csrf(&rep02).await;
    harness
        .post(
            &format!("{record}/transitions"),
            Some(&rep02.cookie),
            &[("_csrf", &csrf), ("to", "lost")],
        )
        .await
        .page(StatusCode::NOT_FOUND);
    // A missing record and an unknown form look the same.
    harness.get("/ui/records/customer/nope", Some(&rep02.cookie)).await.page(StatusCode::NOT_FOUND);
    harness.get("/ui/records/nope/new", Some(&rep02.cookie)).await.page(StatusCode::NOT_FOUND);
    harness.get("/ui/nothing/here", Some(&rep02.cookie)).await.page(StatusCode::NOT_FOUND);
    // Their manager sees it.
    let manager = harness.sign_in("mgr-east").await;
    harness.get(&record, Some(&manager.cookie)).await.page(StatusCode::OK);
}

#[tokio::test]
async fn what_people_type_is_escaped_everywhere() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let record = harness.new_customer(&rep, "<script>alert(1)</script>").await;
    let page = harness.get(&record, Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(!page.body.contains("<script>alert(1)"), "{}", page.body);
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let home = harness.get("/ui", Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(!home.body.contains("<script>alert"));
    let form =
        harness.get("/ui/records/opportunity/new", Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(!form.body.contains("<script>alert"));
    assert!(form.body.contains("&lt;script&gt;"));
    // Attribute values too.
    let csrf = harness.csrf(&rep).await;
    let back = harness
        .post(
            "/ui/records/customer",
            Some(&rep.cookie),
            &[("_csrf", &csrf), ("name", ""), ("short_name", "\"><img src=x onerror=alert(1)>")],
        )
        .await
        .page(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!back.body.contains("<img src=x"), "{}", back.body);
    assert!(back.body.contains("&quot;&gt;&lt;img src&#x3D;x"), "{}", back.body);
}

#[tokio::test]
async fn pages_speak_english_when_asked_and_remember_it() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let chinese = harness.get("/ui", Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(chinese.body.contains("<html lang=\"zh-CN\">"));
    assert!(
        chinese.body.contains("href=\"/ui?lang&#x3D;en\""),
        "a switch to English: {}",
        chinese.body
    );
    let english = harness.get("/ui?lang=en", Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(english.body.contains("<html lang=\"en\">"));
    assert!(english.body.contains("My to-dos"));
    assert!(english.body.contains("New Customer"), "pack texts in English: {}", english.body);
    assert!(english.body.contains("href=\"/ui?lang&#x3D;zh-CN\""));
    let remembered = english.cookie("stagecraft_lang").expect("the language cookie");
    assert_eq!(remembered, "en");
    let cookie = format!("{}; stagecraft_lang=en", rep.cookie);
    let form = harness.get("/ui/records/customer/new", Some(&cookie)).await.page(StatusCode::OK);
    assert!(
        form.body.contains("New Customer") && form.body.contains("Customer name"),
        "{}",
        form.body
    );
    // Messages in English too.
    let csrf = form.csrf();
    let back = harness
        .post("/ui/records/customer", Some(&cookie), &[("_csrf", &csrf), ("name", "")])
        .await
        .page(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(back.body.contains("Customer name is required"), "{}", back.body);
    // Errors are pages in the chosen language.
    let missing =
        harness.get("/ui/records/customer/nope", Some(&cookie)).await.page(StatusCode::NOT_FOUND);
    assert!(missing.body.contains("There is no such page or record"));
    // The login page has the switch too.
    let login = harness.get("/ui/login?lang=en", None).await.page(StatusCode::OK);
    assert!(login.body.contains("<h1>Sign in</h1>"));
    assert!(login.body.contains("lang&#x3D;zh-CN"));
}

#[tokio::test]
async fn a_form_with_a_file_stores_it_through_the_upload_api() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let (_, answer) = deal_with_a_survey_file(&harness, &rep).await;
    let deal = answer.header("location").to_owned();
    let page = harness.get(&deal, Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains("调研表.pdf"), "{}", page.body);
    assert!(page.body.contains("href=\"/api/files/"));
    let _: Value = json!(null);
}

/// Reports an urgent repair through the form (rep01 is the reporter): the request
/// enters its first stage, which notifies the service manager, and the urgent-repair
/// alert notifies the service manager and the engineers. The record page's path.
async fn report_urgent_repair(harness: &Harness) -> String {
    let rep = harness.sign_in("rep01").await;
    let customer = harness.new_customer(&rep, "苏州汽配厂").await;
    let customer_id = customer.rsplit('/').next().expect("id").to_owned();
    let csrf = harness.csrf(&rep).await;
    let answer = harness
        .post(
            "/ui/records/repair_request",
            Some(&rep.cookie),
            &[
                ("_csrf", &csrf),
                ("customer", &customer_id),
                ("equipment", "数控冲床 <CP-200>"),
                ("description", "主轴异响"),
                ("urgency", "high"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let location = answer.header("location").to_owned();
    assert!(location.starts_with("/ui/records/repair_request/"), "{location}");
    harness.deliver().await;
    location
}

#[tokio::test]
async fn a_stage_notification_and_an_alert_land_in_the_inbox_page_with_the_unread_count() {
    let harness = Harness::new();
    let repair = report_urgent_repair(&harness).await;
    let unread = harness.unread("service-mgr");
    assert!(unread >= 2, "the stage's notification and the alert: {unread}");
    let items = harness.inbox("service-mgr");
    assert_eq!(items.len(), unread);

    let manager = harness.sign_in("service-mgr").await;
    // Every signed-in page shows the unread count in its header.
    let home = harness.get("/ui", Some(&manager.cookie)).await.page(StatusCode::OK);
    assert!(home.body.contains(&format!("收件箱 ({unread})")), "{}", home.body);
    assert!(home.body.contains("href=\"/ui/inbox\""));
    let record = harness.get(&repair, Some(&manager.cookie)).await.page(StatusCode::OK);
    assert!(record.body.contains(&format!("收件箱 ({unread})")));

    let page = harness.get("/ui/inbox", Some(&manager.cookie)).await.page(StatusCode::OK);
    let body = &page.body;
    assert!(body.contains(&format!("<title>收件箱 ({unread}) · Stagecraft</title>")), "{body}");
    // Newest first, each unread, with its text and the link to the repair request.
    let mut last = 0;
    for item in &items {
        let at = body.find(&format!("id=\"note-{}\"", item.id)).expect("the item is listed");
        assert!(at > last, "newest first");
        last = at;
        assert!(body.contains(&format!("<li class=\"note unread\" id=\"note-{}\"", item.id)));
        assert!(body.contains(&format!("action=\"/ui/inbox/{}/read\"", item.id)));
    }
    assert!(items.windows(2).all(|pair| pair[0].id > pair[1].id));
    assert!(
        body.contains("<strong>紧急报修（已停产）：数控冲床 &lt;CP-200&gt;</strong>"),
        "{body}"
    );
    assert!(body.contains("<strong>新报修：数控冲床 &lt;CP-200&gt;</strong>"), "{body}");
    assert!(body.contains("请在 4 个工作小时内指定维修工程师"), "the text: {body}");
    assert!(body.contains(&format!("href=\"{repair}\"")), "{body}");
    assert!(body.contains("标为已读") && body.contains("查看记录"));
    // What people typed is escaped here too.
    assert!(!body.contains("<CP-200>"));
    // Someone who got nothing has an empty inbox.
    let rep = harness.sign_in("rep02").await;
    let empty = harness.get("/ui/inbox", Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(empty.body.contains("收件箱 (0)") && empty.body.contains("暂无通知。"));

    // In English.
    let english =
        harness.get("/ui/inbox?lang=en", Some(&manager.cookie)).await.page(StatusCode::OK);
    assert!(english.body.contains(&format!("Inbox ({unread})")));
    assert!(english.body.contains("Mark as read") && english.body.contains("Open the record"));

    // Paging: older than the newest one.
    let older = harness
        .get(&format!("/ui/inbox?before={}", items[0].id), Some(&manager.cookie))
        .await
        .page(StatusCode::OK);
    assert!(!older.body.contains(&format!("id=\"note-{}\"", items[0].id)));
    assert!(older.body.contains(&format!("id=\"note-{}\"", items[1].id)));
    assert!(older.body.contains("id=\"inbox-newest\""));
    harness.get("/ui/inbox?before=soon", Some(&manager.cookie)).await.page(StatusCode::BAD_REQUEST);
    // Without a session, the inbox leads to the login page.
    let anonymous = harness.get("/ui/inbox", None).await.expect(StatusCode::SEE_OTHER);
    assert_eq!(anonymous.header("location"), "/ui/login?next=/ui/inbox");
}

#[tokio::test]
async fn marking_a_notification_read_lowers_the_count_and_needs_the_csrf_token() {
    let harness = Harness::new();
    report_urgent_repair(&harness).await;
    let unread = harness.unread("service-mgr");
    let item = harness.inbox("service-mgr").remove(0);
    let manager = harness.sign_in("service-mgr").await;
    let read = format!("/ui/inbox/{}/read", item.id);

    // Without the token, or with another session's, nothing is marked.
    let refused = harness.post(&read, Some(&manager.cookie), &[]).await.page(StatusCode::FORBIDDEN);
    assert!(refused.body.contains("表单已过期"), "{}", refused.body);
    let other = harness.sign_in("service-mgr").await;
    let other_token = harness.csrf(&other).await;
    harness
        .post(&read, Some(&manager.cookie), &[("_csrf", &other_token)])
        .await
        .page(StatusCode::FORBIDDEN);
    assert_eq!(harness.unread("service-mgr"), unread);

    // With it: back to the inbox, one fewer unread.
    let csrf = harness.csrf(&manager).await;
    let answer = harness
        .post(&read, Some(&manager.cookie), &[("_csrf", &csrf), ("before", "")])
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(answer.header("location"), "/ui/inbox");
    assert_eq!(harness.unread("service-mgr"), unread - 1);
    let page = harness.get("/ui/inbox", Some(&manager.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains(&format!("收件箱 ({})", unread - 1)), "{}", page.body);
    assert!(page.body.contains(&format!("<li class=\"note\" id=\"note-{}\"", item.id)));
    assert!(!page.body.contains(&format!("action=\"{read}\"")));
    // Reading it again changes nothing; from an older page, back to that page.
    harness
        .post(&read, Some(&manager.cookie), &[("_csrf", &csrf), ("before", "99")])
        .await
        .expect(StatusCode::SEE_OTHER)
        .header("location")
        .eq("/ui/inbox?before=99")
        .then_some(())
        .expect("back to the page it came from");
    assert_eq!(harness.unread("service-mgr"), unread - 1);
    // The engineers got the same alert; their copy is still unread.
    let engineer = harness.inbox("eng01");
    assert!(engineer.iter().any(|mine| mine.id == item.id && mine.read_at.is_none()));
}

#[tokio::test]
async fn another_persons_notification_cannot_be_marked_read() {
    let harness = Harness::new();
    report_urgent_repair(&harness).await;
    let unread = harness.unread("service-mgr");
    let item = harness.inbox("service-mgr").remove(0);
    // rep01 reported the repair but was not notified: the id is not theirs.
    assert!(harness.inbox("rep01").is_empty());
    let rep = harness.sign_in("rep01").await;
    let csrf = harness.csrf(&rep).await;
    let page = harness
        .post(&format!("/ui/inbox/{}/read", item.id), Some(&rep.cookie), &[("_csrf", &csrf)])
        .await
        .page(StatusCode::NOT_FOUND);
    assert!(page.body.contains("找不到该页面或记录"), "{}", page.body);
    harness
        .post("/ui/inbox/not-a-number/read", Some(&rep.cookie), &[("_csrf", &csrf)])
        .await
        .page(StatusCode::NOT_FOUND);
    assert_eq!(harness.unread("service-mgr"), unread, "still unread for its owner");
    assert!(harness.inbox("rep01").is_empty());
}

/// rep's new customer 常州阀门 and a deal for it sent as a multipart form with the
/// needs survey attached: the customer's id and the answer (a redirect to the deal).
async fn deal_with_a_survey_file(harness: &Harness, rep: &Browser) -> (String, Answer) {
    let customer = harness.new_customer(rep, "常州阀门").await;
    let customer_id = customer.rsplit('/').next().expect("id").to_owned();
    let csrf = harness.csrf(rep).await;
    let request = multipart(
        "/ui/records/opportunity",
        &rep.cookie,
        &[
            ("_csrf", &csrf),
            ("name", "阀门产线"),
            ("customer", &customer_id),
            ("amount", "500000"),
            ("expected_close_date", "2026-12-31"),
            ("region", "east"),
        ],
        (
            "needs_survey",
            "调研表.pdf",
            "application/pdf",
            "%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n",
        ),
    );
    let answer = harness.send(request).await.expect(StatusCode::SEE_OTHER);
    (customer_id, answer)
}

/// A multipart form post: the text fields, then one file (input name, file name,
/// content type, content).
fn multipart(
    uri: &str,
    cookie: &str,
    fields: &[(&str, &str)],
    file: (&str, &str, &str, &str),
) -> Request<Body> {
    let boundary = "----stagecraft-test";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    let (input, file_name, content_type, content) = file;
    body.push_str(&format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"{input}\"; filename=\"{file_name}\"\r\ncontent-type: {content_type}\r\n\r\n{content}\r\n--{boundary}--\r\n"
    ));
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("cookie", cookie)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(Body::from(body))
        .expect("request")
}
