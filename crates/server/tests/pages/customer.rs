//! The `customer` page: a record and everything that links to it.

use super::board::record_id;
use super::*;

#[tokio::test]
async fn the_overview_gathers_contacts_deals_interactions_and_their_timeline() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep02").await;
    let customer = record_id(&harness, "customer", "name", "宁波海创汽车零部件有限公司");
    // A contact of the customer, added through its form.
    let csrf = harness.csrf(&rep).await;
    harness
        .post(
            "/ui/records/contact",
            Some(&rep.cookie),
            &[("_csrf", &csrf), ("name", "陈工 <设备部>"), ("customer", &customer)],
        )
        .await
        .expect(StatusCode::SEE_OTHER);

    let page = harness
        .get(&format!("/customers/{customer}"), Some(&rep.cookie))
        .await
        .page(StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("全景视图：宁波海创汽车零部件有限公司"), "{body}");
    // The profile.
    assert!(body.contains("id=\"profile-short_name\">海创汽配</dd>"), "{body}");
    // Records linking to it, grouped by form.
    for group in ["contact", "opportunity", "interaction", "first_contact_record"] {
        assert!(body.contains(&format!("id=\"group-{group}\"")), "{group}: {body}");
    }
    assert!(body.contains("陈工 &lt;设备部&gt;"), "escaped: {body}");
    assert!(!body.contains("陈工 <设备部>"));
    assert!(body.contains("焊装线升级") && body.contains("需求确认"), "the deal and its stage");
    assert!(body.contains("现场查看焊装线，带技术同事。"), "the interaction: {body}");
    // One timeline, newest first, with who did what.
    let timeline = &body[body.find("id=\"timeline\"").expect("timeline")..];
    assert!(timeline.contains("<strong>吴婷"), "who: {timeline}");
    assert!(timeline.contains("创建"));
    // A linked record's activity is listed once, not echoed on the customer.
    assert!(!timeline.contains("关联记录有新动态"), "{timeline}");
    // Empty fields are left out of the profile.
    assert!(!body.contains("id=\"profile-website\""), "{body}");
    let contact = timeline.find("陈工 &lt;设备部&gt;").expect("the new contact's creation");
    let deal = timeline.find("焊装线升级").expect("the deal's events");
    assert!(contact < deal, "newest first");

    // The customer's record page links here; a contact (nothing links to it) does not.
    let record = harness.get(&format!("/ui/records/customer/{customer}"), Some(&rep.cookie)).await;
    let record = record.page(StatusCode::OK);
    assert!(record.body.contains(&format!("href=\"/customers/{customer}\" id=\"overview-link\"")));
    let contact_id = record_id(&harness, "contact", "name", "陈工 <设备部>");
    let contact_page =
        harness.get(&format!("/ui/records/contact/{contact_id}"), Some(&rep.cookie)).await;
    assert!(!contact_page.page(StatusCode::OK).body.contains("id=\"overview-link\""));

    // In English.
    let english = harness
        .get(&format!("/customers/{customer}?lang=en"), Some(&rep.cookie))
        .await
        .page(StatusCode::OK);
    assert!(english.body.contains("360° view") && english.body.contains("Timeline"));
}

#[tokio::test]
async fn records_one_link_further_and_their_files_are_included() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep09").await;
    let customer = record_id(&harness, "customer", "name", "天津北方化工集团有限公司");
    let page = harness
        .get(&format!("/customers/{customer}"), Some(&rep.cookie))
        .await
        .page(StatusCode::OK);
    let body = &page.body;
    // The proposal and the quote link to the deal only, not to the customer.
    assert!(body.contains("id=\"group-technical_proposal\""), "{body}");
    assert!(body.contains("id=\"group-price_quote\""), "{body}");
}

#[tokio::test]
async fn the_files_of_linked_records_are_listed_with_download_links() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let (customer_id, _) = deal_with_a_survey_file(&harness, &rep).await;
    let page = harness
        .get(&format!("/customers/{customer_id}"), Some(&rep.cookie))
        .await
        .page(StatusCode::OK);
    let body = &page.body;
    let start = body.find("id=\"files\"").expect("files");
    let files = &body[start..body.find("id=\"timeline\"").expect("timeline")];
    assert!(files.contains("调研表.pdf"), "{files}");
    assert!(files.contains("href=\"/api/files/"), "{files}");
    assert!(files.contains("阀门产线"), "the record holding it: {files}");
}

#[tokio::test]
async fn another_reps_customer_and_unknown_ids_are_not_found() {
    let harness = Harness::new();
    let customer = record_id(&harness, "customer", "name", "宁波海创汽车零部件有限公司");
    let rep = harness.sign_in("rep01").await;
    let page = harness
        .get(&format!("/customers/{customer}"), Some(&rep.cookie))
        .await
        .page(StatusCode::NOT_FOUND);
    assert!(!page.body.contains("宁波海创"), "{}", page.body);
    harness.get("/customers/nope", Some(&rep.cookie)).await.page(StatusCode::NOT_FOUND);
    // A record of an internal form is not a customer either.
    harness.get("/customers/_welcome%2Frep01", Some(&rep.cookie)).await.page(StatusCode::NOT_FOUND);
    // Their manager and the director see it.
    for user in ["mgr-east", "director"] {
        let browser = harness.sign_in(user).await;
        harness
            .get(&format!("/customers/{customer}"), Some(&browser.cookie))
            .await
            .page(StatusCode::OK);
    }
}

#[tokio::test]
async fn the_overview_holds_history_imported_from_other_systems() {
    let harness = Harness::new();
    // The demo company's old CRM and finance system (examples/demo/history).
    let rep = harness.sign_in("rep01").await;
    let customer = record_id(&harness, "customer", "name", "常熟华瑞精密机械有限公司");
    let page = harness
        .get(&format!("/customers/{customer}"), Some(&rep.cookie))
        .await
        .page(StatusCode::OK);
    let body = &page.body;
    for group in ["opportunity", "interaction", "invoice"] {
        assert!(body.contains(&format!("id=\"group-{group}\"")), "{group}: {body}");
    }
    assert!(body.contains("常熟华瑞整机设备项目"), "an imported deal: {body}");
    assert!(body.contains("04420001"), "an invoice from the finance system: {body}");
    assert!(body.contains("旧 CRM"), "the timeline says where the history came from: {body}");
}
