//! The `suggestions` page: everyone sees every suggestion with its status and reply;
//! the handlers (the roles `x-form.feedback.handlers` names) answer them.

use super::*;

/// Submits a suggestion through the generated form; its id.
async fn suggest(harness: &Harness, browser: &Browser, title: &str) -> String {
    let csrf = harness.csrf(browser).await;
    let answer = harness
        .post(
            "/ui/records/process_suggestion",
            Some(&browser.cookie),
            &[
                ("_csrf", &csrf),
                ("title", title),
                ("area", "contract"),
                ("problem", "合同审批要来回找三个人签字"),
                ("suggestion", "法务和财务同时审批"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let location = answer.header("location").to_owned();
    location.rsplit('/').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn everyone_sees_suggestions_and_a_handler_replies_with_a_status() {
    let harness = Harness::new();
    let author = harness.sign_in("rep01").await;
    let id = suggest(&harness, &author, "合同审批<太慢>").await;

    // Another rep sees it (suggestions are for the whole company), without a reply form.
    let reader = harness.sign_in("rep07").await;
    let page = harness.get("/suggestions", Some(&reader.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains("流程优化建议"));
    assert!(page.body.contains("合同审批&lt;太慢&gt;"), "escaped: {}", page.body);
    assert!(page.body.contains("法务和财务同时审批"));
    assert!(page.body.contains("尚未答复"));
    assert!(page.body.contains("href=\"/ui/records/process_suggestion/new\""));
    assert!(!page.body.contains(&format!("id=\"reply-form-{id}\"")));
    harness
        .get(&format!("/ui/records/process_suggestion/{id}"), Some(&reader.cookie))
        .await
        .page(StatusCode::OK);
    // Nor may they answer it.
    let action = format!("/suggestions/process_suggestion/{id}/reply");
    let csrf = harness.csrf(&reader).await;
    harness
        .post(
            &action,
            Some(&reader.cookie),
            &[("_csrf", &csrf), ("status", "declined"), ("reply", "不行")],
        )
        .await
        .page(StatusCode::FORBIDDEN);

    // The department head handles suggestions.
    let handler = harness.sign_in("dept-head").await;
    let page = harness.get("/suggestions", Some(&handler.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains(&format!("id=\"reply-form-{id}\"")), "{}", page.body);
    let version = hidden(
        &page.body[page.body.find(&format!("id=\"reply-form-{id}\"")).unwrap_or(0)..],
        "version",
    )
    .expect("a version");
    let saved = harness
        .post(
            &action,
            Some(&handler.cookie),
            &[
                ("_csrf", &page.csrf()),
                ("version", &version),
                ("status", "accepted"),
                ("reply", "下个版本上线并行审批"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(saved.header("location"), "/suggestions?done=saved");
    // Sent again on the old version: refused, nothing lost.
    let stale = harness
        .post(
            &action,
            Some(&handler.cookie),
            &[
                ("_csrf", &page.csrf()),
                ("version", &version),
                ("status", "declined"),
                ("reply", "x"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(stale.header("location"), "/suggestions?refused=stale");

    let page = harness.get("/suggestions?lang=en", Some(&reader.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains("下个版本上线并行审批"), "{}", page.body);
    assert!(page.body.contains(">Accepted<"), "the status label: {}", page.body);
    let record = harness.state.engine().record(&id).expect("read").expect("the suggestion");
    assert_eq!(record.fields["status"], json!("accepted"));
    assert_eq!(record.owner.as_deref(), Some("rep01"), "the author stays the owner");
}
