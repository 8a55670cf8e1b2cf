//! The in-app inbox as a page: the signed-in person's notifications, newest first,
//! unread ones marked, each with its text and a link to its record; a button marks
//! one read. The work is done by `stagecraft_notify::inbox` (the same functions as
//! `GET /api/inbox` and `POST /api/inbox/{id}/read`), always for the signed-in
//! person only, so another person's notification answers 404 like a missing one.

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use stagecraft_notify::{InboxItem, inbox};

use super::{
    Page, PageError, PageLang, Posted, Signed, blocking, checked_post, encode_component,
    fields::local_time, query_pairs, see_other,
};
use crate::state::AppState;

/// Notifications per page.
const PER_PAGE: usize = 20;

/// How many of the person's notifications are unread; 0 when the store cannot say
/// (the header of a page is no reason to fail it). On a blocking thread.
pub(crate) async fn unread(state: &AppState, user: &str) -> usize {
    let state = state.clone();
    let user = user.to_owned();
    crate::api::blocking(move || {
        Ok(inbox::unread_count(state.engine().store().as_ref(), &user).unwrap_or_default())
    })
    .await
    .unwrap_or_default()
}

/// Where an item links: the record's page on this server when the item names one,
/// else the link it was sent with.
fn link(item: &InboxItem) -> Option<String> {
    match (&item.form, &item.record) {
        (Some(form), Some(record)) => Some(format!(
            "/ui/records/{}/{}",
            encode_component(form).replace('/', "%2F"),
            encode_component(record).replace('/', "%2F")
        )),
        _ => item
            .record_url
            .clone()
            .filter(|url| url.starts_with("https://") || url.starts_with("http://")),
    }
}

/// The page to come back to: the inbox, at the page of `before` if given.
fn inbox_href(before: Option<u64>) -> String {
    match before {
        Some(before) => format!("/ui/inbox?before={before}"),
        None => "/ui/inbox".to_owned(),
    }
}

/// `before` from a query or a form: absent, or a whole number.
fn parse_before(value: Option<&str>) -> Result<Option<u64>, ()> {
    match value {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| ()),
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    uri: Uri,
) -> Response {
    let l = lang.lang;
    let pairs = query_pairs(&uri);
    let asked = pairs.iter().rev().find(|(key, _)| key == "before").map(|(_, v)| v.as_str());
    let Ok(before) = parse_before(asked) else {
        return PageError::new(
            StatusCode::BAD_REQUEST,
            "页码无效。",
            "That page of the inbox does not exist.",
        )
        .page(lang, Some(&signed))
        .into_response();
    };
    let user = signed.user.clone();
    let built = blocking(move || {
        let page = inbox::list(state.engine().store().as_ref(), &user, before, PER_PAGE)
            .map_err(|error| PageError::from_problem(crate::problem::Problem::failure(&error)))?;
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|item| {
                json!({
                    "id": item.id,
                    "subject": item.subject,
                    "text": item.text,
                    "href": link(item),
                    "at": local_time(item.at),
                    "unread": item.read_at.is_none(),
                })
            })
            .collect();
        Ok(json!({
            "title": format!("{} ({})", l.pick("收件箱", "Inbox"), page.unread),
            "unread_total": page.unread,
            "items": items,
            "before": before.map(|b| b.to_string()).unwrap_or_default(),
            "older": page.next.map(|next| inbox_href(Some(next))),
            "newest": before.is_some(),
        }))
    })
    .await;
    match built {
        Ok(data) => {
            Page::render(StatusCode::OK, "inbox", lang, Some(&signed), &inbox_href(before), data)
                .into_response()
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

pub(crate) async fn read(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    Path(id): Path<String>,
    posted: Result<Posted, super::BadBody>,
) -> Response {
    let posted = match checked_post(posted, &signed, lang) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let Ok(id) = id.parse::<u64>() else {
        return PageError::not_found().page(lang, Some(&signed)).into_response();
    };
    let back = inbox_href(parse_before(posted.get("before")).ok().flatten());
    let user = signed.user.clone();
    let marked = blocking(move || {
        let now = state.engine().now();
        inbox::mark_read(state.engine().store().as_ref(), &user, id, now)
            .map_err(|error| PageError::from_problem(crate::problem::Problem::failure(&error)))?
            .ok_or_else(PageError::not_found)
    })
    .await;
    match marked {
        Ok(_) => see_other(&back),
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(form: Option<&str>, record: Option<&str>, url: Option<&str>) -> InboxItem {
        InboxItem {
            id: 7,
            user: "rep01".into(),
            subject: "s".into(),
            text: "t".into(),
            record: record.map(str::to_owned),
            form: form.map(str::to_owned),
            record_url: url.map(str::to_owned),
            cause: "stage".into(),
            at: 0,
            read_at: None,
        }
    }

    #[test]
    fn items_link_to_their_record_on_this_server() {
        let linked = item(Some("opportunity"), Some("o 1/x"), Some("http://h/ui/records/a/b"));
        assert_eq!(link(&linked).as_deref(), Some("/ui/records/opportunity/o%201%2Fx"));
        let report = item(None, None, Some("javascript:alert(1)"));
        assert_eq!(link(&report), None);
        let absolute = item(None, None, Some("https://crm.example/ui/records/a/b"));
        assert_eq!(link(&absolute).as_deref(), Some("https://crm.example/ui/records/a/b"));
    }

    #[test]
    fn before_is_a_whole_number_or_nothing() {
        assert_eq!(parse_before(None), Ok(None));
        assert_eq!(parse_before(Some("")), Ok(None));
        assert_eq!(parse_before(Some("42")), Ok(Some(42)));
        assert!(parse_before(Some("-1")).is_err());
        assert_eq!(inbox_href(Some(42)), "/ui/inbox?before=42");
    }
}
