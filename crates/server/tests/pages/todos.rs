//! The `todos` page.

use super::*;

/// Moves the server's manual clock on (as the administrator, through the API), which
/// also fires what fell due.
pub(super) async fn advance(harness: &Harness, by: &str) {
    let admin = harness.sign_in("admin").await;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/admin/clock")
        .header("content-type", "application/json")
        .header("cookie", &admin.cookie)
        .body(Body::from(json!({"advance": by}).to_string()))
        .expect("request");
    harness.send(request).await.expect(StatusCode::OK);
}

/// The path of a record page, from its address.
fn record_path(location: &str) -> &str {
    location.split('#').next().unwrap_or(location)
}

#[tokio::test]
async fn a_manager_sees_the_review_approval_with_its_clock_and_one_click_to_decide() {
    let harness = Harness::new();
    let manager = harness.sign_in("mgr-east").await;
    // The workbench links to the full list.
    let home = harness.get("/ui", Some(&manager.cookie)).await.page(StatusCode::OK);
    assert!(home.body.contains("href=\"/todos\" id=\"all-todos\""), "{}", home.body);

    let page = harness.get("/todos", Some(&manager.cookie)).await.page(StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("<title>我的待办 · Stagecraft</title>"), "{body}");
    assert!(body.contains("<strong>区域经理审核需求</strong>"), "{body}");
    assert!(body.contains("商机：焊装线升级"), "the record it is about: {body}");
    assert!(body.contains("<span class=\"clock\">剩余 "), "not due yet: {body}");
    let link = body
        .split("class=\"button small go\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("one link to where it is done");
    assert!(link.starts_with("/ui/records/opportunity/"), "{link}");
    assert!(link.ends_with("#approval-regional_manager_review"), "{link}");
    // The link leads to the record page's approval, where the manager may decide.
    let record = harness.get(record_path(link), Some(&manager.cookie)).await.page(StatusCode::OK);
    assert!(record.body.contains("id=\"approval-regional_manager_review\""));
    assert!(record.body.contains("name=\"decision\" value=\"approve\""));

    // In English, and someone without tasks has an empty list.
    let english = harness.get("/todos?lang=en", Some(&manager.cookie)).await.page(StatusCode::OK);
    assert!(english.body.contains("Regional manager reviews the needs"), "{}", english.body);
    assert!(english.body.contains("due in "), "{}", english.body);
    let rep = harness.sign_in("rep03").await;
    let empty = harness.get("/todos", Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(empty.body.contains("暂无待办。"));
    assert!(!empty.body.contains("区域经理审核需求"));
    // Without a session: the login page, coming back here.
    let anonymous = harness.get("/todos", None).await.expect(StatusCode::SEE_OTHER);
    assert_eq!(anonymous.header("location"), "/ui/login?next=/todos");
}

/// Reports a repair as `user`, for a new customer of theirs: the repair request's
/// record page.
async fn report_repair_as(harness: &Harness, user: &str, equipment: &str) -> String {
    let browser = harness.sign_in(user).await;
    let customer = harness.new_customer(&browser, &format!("{equipment} 的客户")).await;
    let customer_id = customer.rsplit('/').next().expect("id").to_owned();
    let csrf = harness.csrf(&browser).await;
    let answer = harness
        .post(
            "/ui/records/repair_request",
            Some(&browser.cookie),
            &[
                ("_csrf", &csrf),
                ("customer", &customer_id),
                ("equipment", equipment),
                ("description", "主轴异响"),
                ("urgency", "high"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    answer.header("location").to_owned()
}

#[tokio::test]
async fn overdue_tasks_come_first_with_how_late_they_are() {
    let harness = Harness::new();
    // The service manager reports a repair: its dispatch task is due within hours.
    // Two weeks later it is long overdue (its escalation hands it to the head of the
    // reporter's department: the service manager again), and a new repair comes in.
    let first = report_repair_as(&harness, "service-mgr", "一号冲床").await;
    advance(&harness, "14d").await;
    let second = report_repair_as(&harness, "service-mgr", "二号冲床").await;
    let manager = harness.sign_in("service-mgr").await;
    let page = harness.get("/todos", Some(&manager.cookie)).await.page(StatusCode::OK);
    let body = &page.body;
    let late = body.find(&format!("href=\"{first}\"")).expect("the first repair is listed");
    let soon = body.find(&format!("href=\"{second}\"")).expect("the second repair is listed");
    assert!(late < soon, "overdue first: {body}");
    let late_item = &body[..late];
    let late_item = &late_item[late_item.rfind("<li").expect("its item")..];
    assert!(late_item.starts_with("<li class=\"todo overdue\""), "{late_item}");
    assert!(late_item.contains("<span class=\"clock late\">已超时 "), "{late_item}");
    let soon_item = &body[..soon];
    let soon_item = &soon_item[soon_item.rfind("<li").expect("its item")..];
    assert!(soon_item.starts_with("<li class=\"todo\""), "{soon_item}");
    assert!(soon_item.contains("<span class=\"clock\">剩余 "), "{soon_item}");
    let english = harness.get("/todos?lang=en", Some(&manager.cookie)).await.page(StatusCode::OK);
    assert!(english.body.contains("overdue by "), "{}", english.body);
}

#[tokio::test]
async fn an_alert_task_links_to_its_form_prefilled_to_link_back() {
    let harness = Harness::new();
    // Deals that stay in a stage for more than a week raise the stall alert, whose
    // task is done by filling in a stall report.
    for by in ["8d", "1d", "1d"] {
        advance(&harness, by).await;
    }
    let rep = harness.sign_in("rep01").await;
    let page = harness.get("/todos", Some(&rep.cookie)).await.page(StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("<span class=\"kind\">预警</span>"), "{body}");
    let link = body
        .split("href=\"/ui/records/stall_report/new?opportunity&#x3D;")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to a new stall report for the deal");
    let form = harness
        .get(&format!("/ui/records/stall_report/new?opportunity={link}"), Some(&rep.cookie))
        .await
        .page(StatusCode::OK);
    assert!(form.body.contains(&format!("value=\"{link}\"")), "the deal is chosen: {}", form.body);
}
