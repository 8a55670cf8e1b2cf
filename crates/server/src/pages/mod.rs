//! Pages: HTML generated from the packs' forms and flows, for people with a browser
//! (a phone is enough). No JavaScript: every action is a form that posts.
//!
//! - `GET /` → `/ui`; `GET/POST /ui/login`, `POST /ui/logout`.
//! - `GET /ui`: my open tasks, "new …" links and my records per form.
//! - `GET /ui/records/{form}/new`, `POST /ui/records/{form}`: the generated form;
//!   problems come back beside their fields, with what was typed kept.
//! - `GET /ui/records/{form}/{id}`: the record, its stage, key actions, exits with the
//!   reasons they are closed, approvals, history; `…/edit`, `…/transitions`,
//!   `…/approvals/{approval}`.
//! - `GET /ui/inbox`: my notifications, newest first, paged; `POST /ui/inbox/{id}/read`.
//!   Every signed-in page links to it with the number of unread notifications.
//! - The workbench, at short addresses that people bookmark (one module each):
//!   `/todos`, `/pool`, `/board`, `/customers/{id}`, `/dashboard` (and
//!   `/dashboard/adoption`), `/graph`, `/suggestions`, `/audit`, `/import`,
//!   `/welcome`. [`PAGE_ROOTS`] lists them, so that signing in can come back to them.
//!
//! Pages change records only through the same functions as the JSON API
//! (`api::records::visible`, `new_record_problems`, `link_problems`,
//! `Engine::execute`), so a page can do nothing the API would refuse. Templates are
//! handlebars in strict mode with HTML escaping everywhere (no triple-stash, no
//! custom escape function), compiled into the binary and registered once. Every form
//! that posts carries a CSRF token derived from the session (see [`csrf_token`]);
//! pages answer with their own content security policy (`headers.rs`): styles and
//! forms from this server only, no scripts. Labels come from the packs' texts, in
//! Chinese unless `?lang=en` (remembered in a cookie).

mod audit;
mod board;
mod customer;
mod dashboard;
mod fields;
mod graph;
mod home;
mod i18n;
mod import;
mod inbox;
mod login;
mod onboarding;
mod pool;
mod records;
mod suggestions;
mod todos;

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Multipart, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use blake2::{Blake2s256, Digest};
use handlebars::Handlebars;
use serde_json::{Value, json};
use stagecraft_model::Text;
use subtle::ConstantTimeEq;

use crate::auth::Caller;
use crate::problem::Problem;
use crate::state::AppState;

/// The cookie that remembers the chosen language.
const LANG_COOKIE: &str = "stagecraft_lang";
/// The name of the hidden field that carries the CSRF token.
pub(crate) const CSRF_FIELD: &str = "_csrf";

/// The page routes. Merged into the application next to the API, outside its OpenAPI
/// document.
pub(crate) fn router() -> Router<AppState> {
    // Compile the templates now, at start-up, not on the first request.
    LazyLock::force(&TEMPLATES);
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(home::home))
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/static/app.css", get(stylesheet))
        .route("/ui/records/{form}/new", get(records::new_form))
        .route("/ui/records/{form}", post(records::create).layer(upload_limit()))
        .route("/ui/records/{form}/{id}", get(records::show))
        .route(
            "/ui/records/{form}/{id}/edit",
            get(records::edit_form).post(records::update).layer(upload_limit()),
        )
        .route("/ui/records/{form}/{id}/transitions", post(records::transition))
        .route("/ui/records/{form}/{id}/approvals/{approval}", post(records::decide))
        .route("/ui/inbox", get(inbox::list))
        .route("/ui/inbox/{id}/read", post(inbox::read))
        // The workbench's pages have short addresses that people bookmark.
        .merge(todos::routes())
        .merge(pool::routes())
        .merge(board::routes())
        .merge(customer::routes())
        .merge(dashboard::routes())
        .merge(graph::routes())
        .merge(suggestions::routes())
        .merge(audit::routes())
        .merge(import::routes())
        .merge(onboarding::routes())
        .route("/ui/{*rest}", get(not_found).post(not_found))
}

/// The first path segments of the workbench's pages (besides `/ui`): a sign-in may
/// come back to them.
pub(crate) const PAGE_ROOTS: &[&str] = &[
    "todos",
    "pool",
    "board",
    "customers",
    "dashboard",
    "graph",
    "suggestions",
    "audit",
    "import",
    "welcome",
];

/// Forms that carry files may be as large as the largest upload, plus the fields.
fn upload_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(crate::api::files::MAX_UPLOAD_BYTES + crate::api::MAX_BODY_BYTES)
}

// ----- language ---------------------------------------------------------------------

/// The language of a page: Chinese unless asked otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Lang {
    /// Simplified Chinese.
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    fn parse(text: &str) -> Option<Lang> {
        match text {
            "zh-CN" | "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The BCP 47 code, also the key of [`Text::get`].
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// A pack text in this language (falling back to the other one).
    pub(crate) fn text(self, text: &Text) -> String {
        text.get(self.code()).to_owned()
    }

    /// One of two wordings.
    pub(crate) fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }
}

/// The language of a request: `?lang=` first (then remembered in a cookie), else the
/// cookie, else Chinese.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageLang {
    pub(crate) lang: Lang,
    /// Whether the query chose it, so the answer sets the cookie.
    chosen: bool,
}

impl PageLang {
    fn of(parts: &Parts) -> PageLang {
        let asked = query_pairs(&parts.uri)
            .into_iter()
            .rev()
            .find(|(key, _)| key == "lang")
            .and_then(|(_, value)| Lang::parse(&value));
        match asked {
            Some(lang) => PageLang { lang, chosen: true },
            None => PageLang {
                lang: cookie(&parts.headers, LANG_COOKIE)
                    .and_then(|value| Lang::parse(&value))
                    .unwrap_or_default(),
                chosen: false,
            },
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PageLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PageLang::of(parts))
    }
}

/// The `key=value` pairs of a query string.
pub(crate) fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|query| query.0)
        .unwrap_or_default()
}

/// A cookie of the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

// ----- who is signed in ---------------------------------------------------------------

/// The signed-in person of a page request. Without a live session, a `GET` is sent to
/// the login page with `next` set to come back; a `POST` to the login page, then home.
#[derive(Clone, Debug)]
pub(crate) struct Signed {
    /// The user id.
    pub(crate) user: String,
    /// The person's name.
    pub(crate) name: String,
    /// The token for forms that post.
    pub(crate) csrf: String,
    /// The session token.
    pub(crate) token: String,
    /// How many notifications in the person's inbox are unread (shown in the header).
    pub(crate) unread: usize,
    /// Whether the menu offers the audit and the import (pages that refuse others).
    pub(crate) may_audit: bool,
    pub(crate) may_import: bool,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Caller::from_request_parts(parts, state).await {
            Ok(caller) => {
                let name = state.with_org(|org| {
                    org.user(&caller.user).map(|person| person.name.clone()).unwrap_or_default()
                });
                let unread = inbox::unread(state, &caller.user).await;
                let may_audit = audit::may_audit(state, &caller.user);
                let may_import = crate::api::import::may_import(state, &caller.user);
                Ok(Signed {
                    may_audit,
                    may_import,
                    csrf: csrf_token(&caller.token),
                    user: caller.user,
                    name,
                    token: caller.token,
                    unread,
                })
            }
            Err(_) => {
                let next = if parts.method == Method::GET {
                    parts.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/ui").to_owned()
                } else {
                    "/ui".to_owned()
                };
                let target = format!("/ui/login?next={}", encode_component(&next));
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

/// Percent-encodes a query component.
pub(crate) fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Where to go after signing in: only a path of these pages (`/ui…` or one of
/// [`PAGE_ROOTS`]), never another site (`//host`, `/\host`, `https://…`) or anything
/// with control characters.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    let ours = |next: &str| {
        std::iter::once("ui").chain(PAGE_ROOTS.iter().copied()).any(|root| {
            next.strip_prefix('/')
                .and_then(|rest| rest.strip_prefix(root))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
        })
    };
    match next {
        Some(next)
            if ours(next)
                && !next.contains("//")
                && !next.contains('\\')
                && !next.chars().any(char::is_control) =>
        {
            next.to_owned()
        }
        _ => "/ui".to_owned(),
    }
}

// ----- CSRF ---------------------------------------------------------------------------

/// The CSRF token of a session: BLAKE2s-256 of the session token, domain-separated,
/// as hex. Another site cannot read the session cookie (HttpOnly) nor this page, so
/// it cannot know the token; the hash is one-way, so a token seen in a page does not
/// reveal the session. Derived rather than stored, so it needs no server secret and
/// lives exactly as long as the session (also across restarts, once sessions are
/// durable). BLAKE2 has no length extension, so hashing the secret with a prefix is a
/// sound keyed function here.
pub(crate) fn csrf_token(session: &str) -> String {
    let mut hasher = Blake2s256::new();
    hasher.update(b"stagecraft/pages/csrf/v1\0");
    hasher.update(session.as_bytes());
    hex(&hasher.finalize())
}

/// Whether a posted token is the expected one, compared in constant time.
pub(crate) fn same_token(expected: &str, posted: Option<&str>) -> bool {
    let Some(posted) = posted else { return false };
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(posted.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

// ----- what forms post ------------------------------------------------------------------

/// An uploaded file of a multipart form.
#[derive(Debug)]
pub(crate) struct Upload {
    /// The input's name.
    pub(crate) field: String,
    /// The file name the browser sent.
    pub(crate) file_name: String,
    /// The content type the browser sent.
    pub(crate) content_type: String,
    /// The bytes.
    pub(crate) bytes: axum::body::Bytes,
}

/// The fields of a posted form, urlencoded or multipart, in order.
#[derive(Debug, Default)]
pub(crate) struct Posted {
    pub(crate) values: Vec<(String, String)>,
    pub(crate) uploads: Vec<Upload>,
}

impl Posted {
    /// The last value of a field.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// A form a signed-in person posted: read, and its CSRF token checked; else the page
/// that says why not (a body that cannot be read, an expired or foreign form).
pub(crate) fn checked_post(
    posted: Result<Posted, BadBody>,
    signed: &Signed,
    lang: PageLang,
) -> Result<Posted, Response> {
    let posted = posted.map_err(|bad| bad.page(lang, Some(signed)).into_response())?;
    if !same_token(&signed.csrf, posted.get(CSRF_FIELD)) {
        return Err(PageError::csrf().page(lang, Some(signed)).into_response());
    }
    Ok(posted)
}

/// Why a posted body could not be read: shown as a page.
#[derive(Debug)]
pub(crate) struct BadBody(StatusCode);

impl<S: Send + Sync> FromRequest<S> for Posted {
    type Rejection = BadBody;

    async fn from_request(request: Request, state: &S) -> Result<Self, BadBody> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let too_large = |status: StatusCode| {
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                BadBody(StatusCode::PAYLOAD_TOO_LARGE)
            } else {
                BadBody(StatusCode::BAD_REQUEST)
            }
        };
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(request, state)
                .await
                .map_err(|rejection| too_large(rejection.status()))?;
            let mut posted = Posted::default();
            while let Some(field) =
                multipart.next_field().await.map_err(|error| too_large(error.status()))?
            {
                let name = field.name().unwrap_or_default().to_owned();
                match field.file_name().map(str::to_owned) {
                    Some(file_name) => {
                        let content_type =
                            field.content_type().unwrap_or("application/octet-stream").to_owned();
                        let bytes =
                            field.bytes().await.map_err(|error| too_large(error.status()))?;
                        // A file input left empty sends a part without a name or bytes.
                        if !file_name.is_empty() || !bytes.is_empty() {
                            posted.uploads.push(Upload {
                                field: name,
                                file_name,
                                content_type,
                                bytes,
                            });
                        }
                    }
                    None => {
                        let text = field.text().await.map_err(|error| too_large(error.status()))?;
                        posted.values.push((name, text));
                    }
                }
            }
            Ok(posted)
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let axum::Form(values) =
                axum::Form::<Vec<(String, String)>>::from_request(request, state)
                    .await
                    .map_err(|rejection| too_large(rejection.status()))?;
            Ok(Posted { values, uploads: Vec::new() })
        } else {
            Err(BadBody(StatusCode::UNSUPPORTED_MEDIA_TYPE))
        }
    }
}

// ----- rendering ------------------------------------------------------------------------

/// The templates, compiled once. A template that does not compile is a bug caught by
/// the tests; the server then answers every page with a plain error instead of
/// panicking.
static TEMPLATES: LazyLock<Result<Handlebars<'static>, String>> = LazyLock::new(templates);

const TEMPLATE_SOURCES: &[(&str, &str)] = &[
    ("head", include_str!("../../templates/head.hbs")),
    ("foot", include_str!("../../templates/foot.hbs")),
    ("field", include_str!("../../templates/field.hbs")),
    ("login", include_str!("../../templates/login.hbs")),
    ("home", include_str!("../../templates/home.hbs")),
    ("form", include_str!("../../templates/form.hbs")),
    ("record", include_str!("../../templates/record.hbs")),
    ("inbox", include_str!("../../templates/inbox.hbs")),
    ("error", include_str!("../../templates/error.hbs")),
    ("todos", include_str!("../../templates/todos.hbs")),
    ("pool", include_str!("../../templates/pool.hbs")),
    ("board", include_str!("../../templates/board.hbs")),
    ("customer", include_str!("../../templates/customer.hbs")),
    ("dashboard", include_str!("../../templates/dashboard.hbs")),
    ("graph", include_str!("../../templates/graph.hbs")),
    ("suggestions", include_str!("../../templates/suggestions.hbs")),
    ("audit", include_str!("../../templates/audit.hbs")),
    ("adoption", include_str!("../../templates/adoption.hbs")),
    ("import", include_str!("../../templates/import.hbs")),
    ("onboarding", include_str!("../../templates/onboarding.hbs")),
];

fn templates() -> Result<Handlebars<'static>, String> {
    let mut registry = Handlebars::new();
    // A name the code does not provide is an error, not an empty string.
    registry.set_strict_mode(true);
    // The default escape function (HTML) stays: no template may turn it off.
    for (name, source) in TEMPLATE_SOURCES {
        if source.contains("{{{") || source.contains("{{&") {
            return Err(format!("template {name} turns off escaping"));
        }
        registry
            .register_template_string(name, *source)
            .map_err(|error| format!("template {name}: {error}"))?;
    }
    Ok(registry)
}

/// An HTML answer, with the language cookie when the query chose the language.
pub(crate) struct Page {
    status: StatusCode,
    html: String,
    cookies: Vec<String>,
}

impl Page {
    /// Renders a template with the values every page has (language, labels, the
    /// signed-in person, the language switch).
    pub(crate) fn render(
        status: StatusCode,
        template: &str,
        lang: PageLang,
        signed: Option<&Signed>,
        switch_href: &str,
        mut data: Value,
    ) -> Page {
        let other = lang.lang.other();
        let separator = if switch_href.contains('?') { '&' } else { '?' };
        let common = json!({
            "lang": lang.lang.code(),
            "t": i18n::labels(lang.lang),
            "user": signed.map(|signed| json!({"id": signed.user, "name": signed.name})),
            "signed_in": signed.is_some(),
            "menu": {
                "audit": signed.is_some_and(|signed| signed.may_audit),
                "import": signed.is_some_and(|signed| signed.may_import),
            },
            "csrf": signed.map(|signed| signed.csrf.clone()).unwrap_or_default(),
            "inbox_unread": signed.map(|signed| signed.unread).unwrap_or_default(),
            "switch": {
                "href": format!("{switch_href}{separator}lang={}", other.code()),
                "label": other.pick("中文", "English"),
                "lang": other.code(),
            },
        });
        if let (Value::Object(data), Value::Object(common)) = (&mut data, common) {
            for (key, value) in common {
                data.entry(key).or_insert(value);
            }
        }
        let html = match TEMPLATES.as_ref() {
            Ok(registry) => registry.render(template, &data).map_err(|error| error.to_string()),
            Err(error) => Err(error.clone()),
        };
        let (status, html) = match html {
            Ok(html) => (status, html),
            Err(error) => {
                eprintln!("error: rendering page {template}: {error}");
                (StatusCode::INTERNAL_SERVER_ERROR, plain_error(lang.lang))
            }
        };
        let mut cookies = Vec::new();
        if lang.chosen {
            cookies.push(format!(
                "{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000",
                lang.lang.code()
            ));
        }
        Page { status, html, cookies }
    }

    /// Adds a `Set-Cookie`.
    pub(crate) fn with_cookie(mut self, cookie: String) -> Page {
        self.cookies.push(cookie);
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.html).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        for cookie in self.cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(SET_COOKIE, value);
            }
        }
        response
    }
}

/// The page shown when even the error template cannot be rendered.
fn plain_error(lang: Lang) -> String {
    format!(
        "<!doctype html><html lang=\"{}\"><meta charset=\"utf-8\"><title>Stagecraft</title><p>{}</p></html>",
        lang.code(),
        lang.pick("服务器出错了，错误已记录。", "The server failed; the error was logged.")
    )
}

/// A 303 to another page.
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

// ----- errors as pages ------------------------------------------------------------------

/// A page that says no: the status and a message in both languages.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    zh: String,
    en: String,
}

impl PageError {
    pub(crate) fn new(status: StatusCode, zh: impl Into<String>, en: impl Into<String>) -> Self {
        PageError { status, zh: zh.into(), en: en.into() }
    }

    pub(crate) fn not_found() -> Self {
        PageError::new(
            StatusCode::NOT_FOUND,
            "找不到该页面或记录，或您无权查看。",
            "There is no such page or record, or you may not see it.",
        )
    }

    pub(crate) fn csrf() -> Self {
        PageError::new(
            StatusCode::FORBIDDEN,
            "表单已过期或来源无法确认，请返回上一页刷新后重新提交。",
            "The form has expired or its origin cannot be confirmed; go back, reload the page and send it again.",
        )
    }

    /// The page of an API problem, by its status (the problem's own detail is for
    /// clients; people get a sentence in their language).
    pub(crate) fn from_problem(problem: Problem) -> Self {
        let status = problem.into_response().status();
        match status {
            StatusCode::NOT_FOUND => PageError::not_found(),
            StatusCode::FORBIDDEN => {
                PageError::new(status, "您无权进行此操作。", "You may not do this.")
            }
            StatusCode::CONFLICT => PageError::new(
                status,
                "记录已被他人修改，请刷新后重试。",
                "The record changed meanwhile; reload it and try again.",
            ),
            _ => PageError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "服务器出错了，错误已记录，请稍后再试。",
                "The server failed; the error was logged. Try again later.",
            ),
        }
    }

    /// Renders the error page.
    pub(crate) fn page(self, lang: PageLang, signed: Option<&Signed>) -> Page {
        let message = match lang.lang {
            Lang::Zh => self.zh,
            Lang::En => self.en,
        };
        Page::render(
            self.status,
            "error",
            lang,
            signed,
            "/ui",
            json!({
                "title": lang.lang.pick("出错了", "Something went wrong"),
                "status": self.status.as_u16(),
                "message": message,
            }),
        )
    }
}

impl From<Problem> for PageError {
    fn from(problem: Problem) -> Self {
        PageError::from_problem(problem)
    }
}

impl IntoResponse for BadBody {
    fn into_response(self) -> Response {
        self.page(PageLang { lang: Lang::Zh, chosen: false }, None).into_response()
    }
}

impl BadBody {
    pub(crate) fn page(self, lang: PageLang, signed: Option<&Signed>) -> Page {
        let error = match self.0 {
            StatusCode::PAYLOAD_TOO_LARGE => {
                PageError::new(self.0, "提交的内容太大了。", "What you sent is too large.")
            }
            _ => PageError::new(
                StatusCode::BAD_REQUEST,
                "无法读取提交的表单。",
                "The form that was sent cannot be read.",
            ),
        };
        error.page(lang, signed)
    }
}

/// Runs blocking work (store, engine) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    crate::api::blocking(move || Ok(work())).await.map_err(PageError::from_problem)?
}

async fn not_found(lang: PageLang, signed: Option<Signed>) -> Page {
    PageError::not_found().page(lang, signed.as_ref())
}

/// Implemented so that handlers can take `Option<Signed>` (pages that also show
/// to people who are not signed in).
impl axum::extract::OptionalFromRequestParts<AppState> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(<Signed as FromRequestParts<AppState>>::from_request_parts(parts, state).await.ok())
    }
}

async fn stylesheet() -> Response {
    let mut response = include_str!("../../templates/app.css").into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_in_strict_mode_and_escapes() {
        let registry = templates().expect("the templates compile");
        assert!(registry.strict_mode());
        for (name, source) in TEMPLATE_SOURCES {
            assert!(!source.contains("{{{"), "{name} uses a triple-stash");
        }
    }

    #[test]
    fn next_stays_on_these_pages() {
        assert_eq!(safe_next(Some("/ui/records/customer/abc")), "/ui/records/customer/abc");
        assert_eq!(safe_next(Some("/ui?lang=en")), "/ui?lang=en");
        assert_eq!(safe_next(Some("/todos")), "/todos");
        assert_eq!(safe_next(Some("/customers/c1?lang=en")), "/customers/c1?lang=en");
        for bad in [
            "//evil.example/ui",
            "https://evil.example/ui",
            "/\\evil.example",
            "/api/tasks",
            "/ui//evil",
            "/todosx",
            "/uix",
            "/ui/\nx",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/ui");
    }

    #[test]
    fn csrf_tokens_depend_on_the_session_and_compare_exactly() {
        let token = csrf_token("session-a");
        assert_eq!(token.len(), 64);
        assert_eq!(token, csrf_token("session-a"));
        assert_ne!(token, csrf_token("session-b"));
        assert!(same_token(&token, Some(&token)));
        assert!(!same_token(&token, Some(&csrf_token("session-b"))));
        assert!(!same_token(&token, Some("")));
        assert!(!same_token(&token, None));
        assert!(!same_token("", Some("")));
    }
}
