//! Onboarding: the first-visit walkthrough and "what to do next" on record pages.

use super::board::record_id;
use super::*;

/// Signs in through the login form without visiting the workbench afterwards (the
/// harness's `sign_in` visits it once, which uses up the walkthrough).
async fn first_sign_in(harness: &Harness, user: &str) -> Browser {
    let form = harness.get("/ui/login", None).await.page(StatusCode::OK);
    let login_cookie = form.cookie("stagecraft_login_csrf").expect("a login cookie");
    let answer = harness
        .post(
            "/ui/login",
            Some(&format!("stagecraft_login_csrf={login_cookie}")),
            &[("_csrf", &form.csrf()), ("username", user), ("password", "stagecraft")],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(answer.header("location"), "/ui");
    let session = answer.cookie("stagecraft_session").expect("a session cookie");
    Browser { cookie: format!("stagecraft_session={session}") }
}

#[tokio::test]
async fn the_walkthrough_shows_itself_once_on_the_first_visit() {
    let harness = Harness::new();
    let rep = first_sign_in(&harness, "rep01").await;
    let first = harness.get("/ui", Some(&rep.cookie)).await.expect(StatusCode::SEE_OTHER);
    assert_eq!(first.header("location"), "/welcome");
    let welcome = harness.get("/welcome", Some(&rep.cookie)).await.page(StatusCode::OK);
    let body = &welcome.body;
    assert!(body.contains("<h1>新手引导</h1>"), "{body}");
    assert!(body.contains("<span class=\"badge\">销售代表</span>"), "the role: {body}");
    assert!(body.contains("href=\"/ui/records/opportunity/new\""), "what to create: {body}");
    // The flows with each stage's guidance.
    assert!(body.contains("id=\"flow-sales-pipeline\""), "{body}");
    assert!(body.contains("录入商机只需四项"), "a stage's guidance: {body}");
    for page in ["/todos", "/pool", "/board", "/dashboard", "/ui/inbox"] {
        assert!(body.contains(&format!("<a href=\"{page}\">")), "{page}");
    }
    // Once only: the workbench now opens, and the walkthrough stays in the menu.
    let home = harness.get("/ui", Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(home.body.contains("<a href=\"/welcome\">新手引导</a>"));
    // Ending it needs the form's token, then leads to the workbench.
    harness
        .post("/welcome", Some(&rep.cookie), &[("end", "done")])
        .await
        .page(StatusCode::FORBIDDEN);
    let csrf = welcome.csrf();
    let done = harness
        .post("/welcome", Some(&rep.cookie), &[("_csrf", &csrf), ("end", "done")])
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(done.header("location"), "/ui");
    // A language chosen on the first visit goes along.
    let english = first_sign_in(&harness, "rep05").await;
    let first =
        harness.get("/ui?lang=en", Some(&english.cookie)).await.expect(StatusCode::SEE_OTHER);
    assert_eq!(first.header("location"), "/welcome?lang=en");
    // Signing in again does not show it again.
    let again = first_sign_in(&harness, "rep01").await;
    harness.get("/ui", Some(&again.cookie)).await.page(StatusCode::OK);
    // In English.
    let english = harness.get("/welcome?lang=en", Some(&again.cookie)).await.page(StatusCode::OK);
    assert!(
        english.body.contains("Getting started") && english.body.contains("Sales representative")
    );
}

#[tokio::test]
async fn the_walkthrough_follows_the_persons_roles() {
    let harness = Harness::new();
    let manager = harness.sign_in("service-mgr").await;
    let page = harness.get("/welcome", Some(&manager.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains("id=\"flow-repair\""), "{}", page.body);
    assert!(!page.body.contains("id=\"flow-sales-pipeline\""), "{}", page.body);
}

#[tokio::test]
async fn a_record_page_says_what_to_do_next() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let deal = record_id(&harness, "opportunity", "name", "二号车间数控机床");
    let page = harness
        .get(&format!("/ui/records/opportunity/{deal}"), Some(&rep.cookie))
        .await
        .page(StatusCode::OK);
    let body = &page.body;
    let start = body.find("id=\"what-next\"").expect("the box");
    let next = &body[start..start + body[start..].find("</div>").expect("its end")];
    assert!(next.contains("下一步做什么"), "{next}");
    assert!(next.contains("按顺序完成三件事"), "the stage's guidance: {next}");
    // The key actions still to do, the one that can be done now first.
    let basic = next.find("录入客户基本信息").expect("basic info");
    let call = next.find("完成首次电话沟通").expect("the call");
    assert!(basic < call, "{next}");
    assert!(next.contains("（需先完成前面的动作）"), "{next}");
    // The exits with what still stands in their way.
    assert!(next.contains("id=\"next-exits\""), "{next}");
    assert!(next.contains("<ol class=\"reasons\"><li>"), "{next}");
    // A deal that has ended has no box.
    let director = harness.sign_in("director").await;
    let lost = record_id(&harness, "opportunity", "name", "包装线维保合同");
    let page = harness
        .get(&format!("/ui/records/opportunity/{lost}"), Some(&director.cookie))
        .await
        .page(StatusCode::OK);
    assert!(!page.body.contains("id=\"what-next\""));
}
