//! Signing in and out with a form.
//!
//! The login form is protected against login CSRF (another site signing a browser in
//! as someone else) with a double-submit token: the page sets a random token in a
//! cookie that is `HttpOnly`, `SameSite=Strict` and only sent to `/ui/login`, and puts
//! the same token in a hidden field; a post is accepted only when both are there and
//! equal. Another site can make a browser post the form, but it can neither read nor
//! set that cookie, so it cannot make them match. There is no session yet to derive a
//! token from, hence the cookie.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{
    CSRF_FIELD, Lang, Page, PageError, PageLang, Posted, Signed, checked_post, cookie, query_pairs,
    safe_next, same_token, see_other,
};
use crate::api::session::{LoginRefused, cleared_session_cookie, session_cookie, sign_in};
use crate::auth::{SESSION_COOKIE, new_token};
use crate::state::AppState;

/// The cookie that carries the login form's token.
const LOGIN_CSRF_COOKIE: &str = "stagecraft_login_csrf";

fn login_csrf_cookie(token: &str) -> String {
    format!("{LOGIN_CSRF_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/ui/login; Max-Age=3600")
}

/// What the login page shows.
#[derive(Default)]
struct LoginPage {
    next: String,
    username: String,
    message: String,
    username_error: String,
    password_error: String,
}

fn render(status: StatusCode, lang: PageLang, token: &str, page: LoginPage) -> Page {
    let title = lang.lang.pick("登录", "Sign in");
    let switch = format!("/ui/login?next={}", super::encode_component(&page.next));
    Page::render(
        status,
        "login",
        lang,
        None,
        &switch,
        json!({
            "title": title,
            "login_csrf": token,
            "next": page.next,
            "username": page.username,
            "message": page.message,
            "username_error": page.username_error,
            "password_error": page.password_error,
        }),
    )
    .with_cookie(login_csrf_cookie(token))
}

pub(crate) async fn form(lang: PageLang, uri: axum::http::Uri, headers: HeaderMap) -> Page {
    let next = query_pairs(&uri).into_iter().find(|(key, _)| key == "next").map(|(_, v)| v);
    let token = cookie(&headers, LOGIN_CSRF_COOKIE)
        .filter(|token| token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(new_token);
    let page = LoginPage { next: safe_next(next.as_deref()), ..LoginPage::default() };
    render(StatusCode::OK, lang, &token, page)
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    lang: PageLang,
    headers: HeaderMap,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    let posted = match posted {
        Ok(posted) => posted,
        Err(bad) => return bad.page(lang, None).into_response(),
    };
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if !same_token(&expected, posted.get(CSRF_FIELD)) {
        return PageError::csrf().page(lang, None).into_response();
    }
    let next = safe_next(posted.get("next"));
    let username = posted.get("username").unwrap_or_default().to_owned();
    let password = posted.get("password").unwrap_or_default().to_owned();
    match sign_in(&state, &username, password).await {
        Ok(signed_in) => {
            // A new session, never the one the browser came with: the old one ends.
            if let Some(old) = cookie(&headers, SESSION_COOKIE) {
                end_session(&state, old, "signed in again; the new session replaces this one")
                    .await;
            }
            let mut response = see_other(&next);
            let headers = response.headers_mut();
            for cookie in [
                session_cookie(&signed_in.token),
                format!(
                    "{LOGIN_CSRF_COOKIE}=; HttpOnly; SameSite=Strict; Path=/ui/login; Max-Age=0"
                ),
            ] {
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    headers.append(SET_COOKIE, value);
                }
            }
            response
        }
        Err(refused) => {
            let l = lang.lang;
            let mut page = LoginPage { next, username, ..LoginPage::default() };
            let status = match refused {
                LoginRefused::Empty(problems) => {
                    for problem in problems {
                        let message = match l {
                            Lang::Zh => problem.message_zh,
                            Lang::En => problem.message_en,
                        };
                        if problem.pointer == "/username" {
                            page.username_error = message;
                        } else {
                            page.password_error = message;
                        }
                    }
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                LoginRefused::TooMany(wait) => {
                    page.message = match l {
                        Lang::Zh => format!("该用户名登录失败次数过多，请 {wait} 秒后再试。"),
                        Lang::En => format!(
                            "Too many failed sign-ins for this username; try again in {wait} seconds."
                        ),
                    };
                    StatusCode::TOO_MANY_REQUESTS
                }
                LoginRefused::Wrong => {
                    page.message = l
                        .pick("用户名或密码不正确。", "The username or password is wrong.")
                        .to_owned();
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                LoginRefused::Failed(problem) => {
                    return PageError::from_problem(problem).page(lang, None).into_response();
                }
            };
            // The same token again: the cookie still holds it.
            render(status, lang, &expected, page).into_response()
        }
    }
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Option<Signed>,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    let Some(signed) = signed else { return see_other("/ui/login") };
    if let Err(refused) = checked_post(posted, &signed, lang) {
        return refused;
    }
    end_session(&state, signed.token.clone(), "signed out; sign in again").await;
    let mut response = see_other("/ui/login");
    if let Ok(value) = HeaderValue::from_str(&cleared_session_cookie()) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// Ends a session (a store write, so on a blocking thread); a failure is logged there.
async fn end_session(state: &AppState, token: String, why: &'static str) {
    let ending = state.clone();
    let _ = super::blocking(move || {
        ending.sessions().end(&token, ending.engine().now(), why);
        Ok(())
    })
    .await;
}
