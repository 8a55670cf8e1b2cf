//! The `import` page: upload a CSV, map its columns and stage names (pre-filled from
//! the headers), check it (the report by row and column), apply it, follow the job
//! to its result; a rep may not import.

use super::*;

/// Deals from another CRM, for customers of the demo company.
const DEALS: &str = "商机名称,客户,预计金额（元）,预计成交日期,阶段,负责人,创建日期,成交日期\n\
    精工三期改造,苏州精工机械有限公司,\"1,280,000\",2025-06-30,赢单,林晓峰,2024-04-01,2025-05-20\n\
    海创产线升级,宁波海创汽车零部件有限公司,85万,2026/9/30,谈判中,rep02,2025-11-12,\n";

/// Posts the upload form (multipart) as `browser`.
async fn upload(harness: &Harness, browser: &Browser, form: &str, csv: &str) -> Answer {
    let csrf = harness.get("/import", Some(&browser.cookie)).await.page(StatusCode::OK).csrf();
    let request = multipart(
        "/import/upload",
        &browser.cookie,
        &[("_csrf", &csrf), ("form", form)],
        ("file", "旧系统商机.csv", "text/csv", csv),
    );
    harness.send(request).await
}

/// The value of the option selected in the select named `name`.
fn selected(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\""))?;
    let end = html[start..].find("</select>")? + start;
    let select = &html[start..end];
    let at = select.find(" selected>")?;
    let open = select[..at].rfind("value=\"")? + "value=\"".len();
    Some(select[open..at - 1].to_owned())
}

#[tokio::test]
async fn a_file_is_mapped_checked_applied_and_followed_to_its_result() {
    let harness = Harness::new();
    let admin = harness.sign_in("admin").await;
    let start = harness.get("/import", Some(&admin.cookie)).await.page(StatusCode::OK);
    assert!(
        start.body.contains("数据导入") && start.body.contains("enctype=\"multipart/form-data\"")
    );
    let draft = upload(&harness, &admin, "opportunity", DEALS).await.expect(StatusCode::SEE_OTHER);
    let draft = draft.header("location").to_owned();
    assert!(draft.starts_with("/import/drafts/"), "{draft}");

    // The mapping is pre-filled from the headers; the other system's stage names
    // are offered for mapping.
    let page = harness.get(&draft, Some(&admin.cookie)).await.page(StatusCode::OK);
    assert_eq!(selected(&page.body, "col.amount").as_deref(), Some("预计金额（元）"));
    assert_eq!(selected(&page.body, "stage").as_deref(), Some("阶段"));
    assert_eq!(selected(&page.body, "owner").as_deref(), Some("负责人"));
    assert!(page.body.contains("name=\"sname.0\" value=\"赢单\""), "{}", page.body);
    assert!(page.body.contains("name=\"sname.1\" value=\"谈判中\""));

    // A check without the stage names: every row has a problem, in a table.
    let csrf = page.csrf();
    let base = [
        ("_csrf", csrf.as_str()),
        ("col.name", "商机名称"),
        ("col.customer", "客户"),
        ("col.amount", "预计金额（元）"),
        ("col.expected_close_date", "预计成交日期"),
        ("owner", "负责人"),
        ("created", "创建日期"),
        ("stage", "阶段"),
        ("closed", "成交日期"),
        ("sname.0", "赢单"),
        ("sname.1", "谈判中"),
    ];
    let check = format!("{draft}/check");
    let refused = harness
        .post(&check, Some(&admin.cookie), &base)
        .await
        .page(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("id=\"import-problems\""), "{}", refused.body);
    assert!(refused.body.contains("<td>2</td><td>阶段</td><td>赢单</td>"), "{}", refused.body);
    assert!(!refused.body.contains("id=\"import-apply\""), "no apply while rows have problems");

    // With the stage names mapped, the check is clean and offers to apply.
    let mut mapped = base.to_vec();
    mapped.extend([("smap.0", "won"), ("smap.1", "negotiation")]);
    let clean = harness.post(&check, Some(&admin.cookie), &mapped).await.page(StatusCode::OK);
    assert!(clean.body.contains("id=\"import-apply\""), "{}", clean.body);
    assert_eq!(selected(&clean.body, "smap.0").as_deref(), Some("won"), "the mapping is kept");
    let before = harness
        .state
        .engine()
        .store()
        .records_of_form("opportunity", stagecraft_store::Page::first(10_000))
        .expect("list")
        .len();
    let csrf = clean.csrf();
    let job = harness
        .post(&format!("{draft}/apply"), Some(&admin.cookie), &[("_csrf", csrf.as_str())])
        .await
        .expect(StatusCode::SEE_OTHER);
    let job = job.header("location").to_owned();
    assert!(job.starts_with("/import/jobs/"), "{job}");
    let mut page = harness.get(&job, Some(&admin.cookie)).await.page(StatusCode::OK);
    for _ in 0..500 {
        if page.header("refresh").is_empty() {
            break;
        }
        assert!(page.body.contains("<progress"), "{}", page.body);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        page = harness.get(&job, Some(&admin.cookie)).await.page(StatusCode::OK);
    }
    assert!(page.body.contains("id=\"job-done\""), "{}", page.body);
    assert!(page.body.contains("精工三期改造") && page.body.contains("海创产线升级"));
    let after = harness
        .state
        .engine()
        .store()
        .records_of_form("opportunity", stagecraft_store::Page::first(10_000))
        .expect("list")
        .len();
    assert_eq!(after, before + 2);

    // An imported record's page shows where its history comes from.
    let start = page.body.find("href=\"/ui/records/opportunity/").expect("a record link") + 6;
    let end = page.body[start..].find('"').expect("the link's end") + start;
    let record =
        harness.get(&page.body[start..end], Some(&admin.cookie)).await.page(StatusCode::OK);
    assert!(record.body.contains("从其他系统导入：旧系统商机.csv"), "{}", record.body);

    // In English too.
    let english =
        harness.get(&format!("{job}?lang=en"), Some(&admin.cookie)).await.page(StatusCode::OK);
    assert!(english.body.contains("Import finished"), "{}", english.body);
}

#[tokio::test]
async fn a_file_without_rows_or_a_form_is_refused_with_a_reason() {
    let harness = Harness::new();
    let admin = harness.sign_in("admin").await;
    let empty = upload(&harness, &admin, "customer", "客户名称\n")
        .await
        .page(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.body.contains("文件中没有数据行"), "{}", empty.body);
    let nothing = upload(&harness, &admin, "no-such-form", "客户名称\n某公司\n").await;
    let nothing = nothing.page(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(nothing.body.contains("请选择要导入的表单"), "{}", nothing.body);
}

#[tokio::test]
async fn a_rep_may_not_import_and_every_post_needs_the_csrf_token() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    harness.get("/import", Some(&rep.cookie)).await.page(StatusCode::FORBIDDEN);
    let admin = harness.sign_in("admin").await;
    let draft = upload(&harness, &admin, "opportunity", DEALS).await.expect(StatusCode::SEE_OTHER);
    let draft = draft.header("location").to_owned();
    // Another person's draft is not found; a post without the token is refused.
    harness.get(&draft, Some(&rep.cookie)).await.page(StatusCode::NOT_FOUND);
    harness
        .post(&format!("{draft}/apply"), Some(&admin.cookie), &[("_csrf", "wrong")])
        .await
        .page(StatusCode::FORBIDDEN);
}

/// Posts the org form (multipart): a people file and the button pressed.
async fn org_form(harness: &Harness, browser: &Browser, people: &str, action: &str) -> Answer {
    let csrf = harness.get("/import", Some(&browser.cookie)).await.page(StatusCode::OK).csrf();
    let request = multipart(
        "/import/org",
        &browser.cookie,
        &[("_csrf", &csrf), ("action", action)],
        ("people", "people.csv", "text/csv", people),
    );
    harness.send(request).await
}

#[tokio::test]
async fn the_org_check_shows_who_would_be_added_and_the_problems() {
    let harness = Harness::new();
    let admin = harness.sign_in("admin").await;
    let people =
        "用户名,姓名,上级,角色\nrep13,赵磊,mgr-east,sales_rep\nrep14,孙悦,林晓峰,sales_rep\n";
    let checked = org_form(&harness, &admin, people, "check").await.page(StatusCode::OK);
    assert!(checked.body.contains("id=\"org-dry\""), "{}", checked.body);
    assert!(checked.body.contains("rep13、rep14"), "{}", checked.body);
    let bad = org_form(&harness, &admin, "用户名,姓名,角色\nx1,甲,wizard\n", "apply").await;
    let bad = bad.page(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("<td>people</td><td>2</td><td>角色</td><td>wizard</td>"),
        "{}",
        bad.body
    );
}
