//! The `board` page.

use super::*;

/// The id of the record of `form` whose `field` is `value`.
pub(super) fn record_id(harness: &Harness, form: &str, field: &str, value: &str) -> String {
    let engine = harness.state.engine();
    let ids = engine
        .store()
        .records_of_form(form, stagecraft_store::Page::first(1000))
        .expect("the form's records");
    ids.iter()
        .find_map(|id| {
            let record = engine.record(id.as_str()).ok().flatten()?;
            (record.fields.get(field)?.as_str()? == value).then(|| record.id.clone())
        })
        .unwrap_or_else(|| panic!("a {form} with {field} = {value}"))
}

/// The HTML of one card.
fn card<'a>(body: &'a str, id: &str) -> &'a str {
    let start =
        body.find(&format!("id=\"card-{id}\"")).unwrap_or_else(|| panic!("card {id}: {body}"));
    let end = body[start..].find("</article>").expect("the card ends") + start;
    &body[start..end]
}

/// The first reason a closed exit gives, in a card or a page.
fn first_reason(html: &str) -> String {
    let start = html.find("<ul class=\"reasons\"><li>").expect("a reason") + 24;
    let end = html[start..].find("</li>").expect("the reason ends") + start;
    html[start..end].to_owned()
}

#[tokio::test]
async fn the_board_shows_my_deals_by_stage_with_their_exits_and_gates() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let page = harness.get("/board", Some(&rep.cookie)).await.page(StatusCode::OK);
    let body = &page.body;
    // The sales pipeline (rep01 has deals there), its open stages as columns.
    assert!(body.contains("<h1>商机看板：销售商机流程</h1>"), "{body}");
    for stage in ["lead", "first_contact", "needs_confirmed", "proposal", "negotiation"] {
        assert!(body.contains(&format!("id=\"column-{stage}\"")), "{stage}: {body}");
    }
    assert!(!body.contains("id=\"column-won\""), "ended stages are counts");
    assert!(
        body.contains("<summary>已丢单: 0 条</summary>") || body.contains("id=\"board-ended\"")
    );
    // Only rep01's own deals.
    assert!(body.contains("冲压线自动化改造") && body.contains("二号车间数控机床"));
    assert!(!body.contains("焊装线升级"), "another rep's deal: {body}");

    let lead = record_id(&harness, "opportunity", "name", "冲压线自动化改造");
    let customer = record_id(&harness, "customer", "name", "苏州精工机械有限公司");
    let lead_card = card(body, &lead);
    let column = body.find("id=\"column-lead\"").expect("lead column");
    let next_column = body.find("id=\"column-first_contact\"").expect("next column");
    let at = body.find(&format!("id=\"card-{lead}\"")).expect("card");
    assert!(column < at && at < next_column, "the deal is in its stage's column");
    assert!(lead_card.contains("负责人: 林晓峰"), "{lead_card}");
    assert!(lead_card.contains("本阶段已 0 天"), "{lead_card}");
    // The amount the flow's measures name, and the column's total.
    assert!(
        lead_card.contains("<div class=\"amount\">预计金额（元） 1,200,000</div>"),
        "{lead_card}"
    );
    assert!(
        lead_card.contains(&format!("<a href=\"/customers/{customer}\">苏州精工机械有限公司</a>")),
        "the customer's overview: {lead_card}"
    );
    // The deal has no region yet: the move on is closed, and says why.
    assert!(lead_card.contains("<span class=\"closed\">开始初步接触</span>"), "{lead_card}");
    let reason = first_reason(lead_card);
    assert!(!reason.is_empty());
    assert!(
        body.contains("<p class=\"totals\">1 条 · 合计 1,200,000</p>"),
        "column totals: {body}"
    );

    // Posted anyway (a stale board), the move is refused and the record page says why.
    let csrf = harness.csrf(&rep).await;
    let action = format!("/ui/records/opportunity/{lead}/transitions");
    let refused = harness
        .post(
            &action,
            Some(&rep.cookie),
            &[("_csrf", &csrf), ("to", "first_contact"), ("back", "/board?flow=sales-pipeline")],
        )
        .await
        .page(StatusCode::CONFLICT);
    assert!(refused.body.contains("id=\"notices\""), "{}", refused.body);
    assert!(refused.body.contains(&reason), "the same reason: {}", refused.body);

    // In English.
    let english = harness.get("/board?lang=en", Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(
        english.body.contains("Pipeline board") && english.body.contains("Start first contact")
    );
    // A flow that does not exist is a 404 page.
    harness.get("/board?flow=nope", Some(&rep.cookie)).await.page(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_open_exit_moves_the_deal_from_the_board_and_comes_back() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let customer = record_id(&harness, "customer", "name", "苏州精工机械有限公司");
    let csrf = harness.csrf(&rep).await;
    for name in ["看板上的新商机", "另一个新商机"] {
        harness
            .post(
                "/ui/records/opportunity",
                Some(&rep.cookie),
                &[
                    ("_csrf", &csrf),
                    ("name", name),
                    ("customer", &customer),
                    ("amount", "250000"),
                    ("expected_close_date", "2027-05-31"),
                    ("region", "east"),
                ],
            )
            .await
            .expect(StatusCode::SEE_OTHER);
    }
    let deal = record_id(&harness, "opportunity", "name", "看板上的新商机");
    let page = harness.get("/board", Some(&rep.cookie)).await.page(StatusCode::OK);
    let deal_card = card(&page.body, &deal);
    let action = format!("action=\"/ui/records/opportunity/{deal}/transitions\"");
    assert!(deal_card.contains(&action), "an open exit: {deal_card}");
    assert!(
        deal_card.contains("name=\"back\" value=\"/board?flow&#x3D;sales-pipeline\""),
        "{deal_card}"
    );

    let moved = harness
        .post(
            &format!("/ui/records/opportunity/{deal}/transitions"),
            Some(&rep.cookie),
            &[("_csrf", &csrf), ("to", "first_contact"), ("back", "/board?flow=sales-pipeline")],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(moved.header("location"), "/board?flow=sales-pipeline");
    let page =
        harness.get("/board?flow=sales-pipeline", Some(&rep.cookie)).await.page(StatusCode::OK);
    let column = page.body.find("id=\"column-first_contact\"").expect("column");
    let at = page.body.find(&format!("id=\"card-{deal}\"")).expect("card");
    assert!(column < at, "now in first contact");
    // `back` goes only to these pages.
    let other = record_id(&harness, "opportunity", "name", "另一个新商机");
    let elsewhere = harness
        .post(
            &format!("/ui/records/opportunity/{other}/transitions"),
            Some(&rep.cookie),
            &[("_csrf", &csrf), ("to", "first_contact"), ("back", "https://evil.example/")],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(elsewhere.header("location"), "/ui");
}

#[tokio::test]
async fn managers_see_their_team_and_the_director_sees_everyone() {
    let harness = Harness::new();
    let manager = harness.sign_in("mgr-east").await;
    let page = harness.get("/board", Some(&manager.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains("焊装线升级") && page.body.contains("冲压线自动化改造"));
    assert!(!page.body.contains("反应釜自动化控制系统"), "another region's deal");
    let director = harness.sign_in("director").await;
    let page = harness.get("/board", Some(&director.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains("焊装线升级") && page.body.contains("反应釜自动化控制系统"));
    // Someone without flow records gets a sentence, not an empty board.
    let engineer = harness.sign_in("eng01").await;
    let page = harness.get("/board", Some(&engineer.cookie)).await.page(StatusCode::OK);
    assert!(page.body.contains("您还没有可查看的流程记录。"), "{}", page.body);
}

#[tokio::test]
async fn cards_flag_stalled_deals_breached_slas_and_open_reviews() {
    let harness = Harness::new();
    // More than a week in the same stage: the stall alert (with its task) and the
    // lead stage's two-day SLA.
    for by in ["8d", "1d", "1d"] {
        super::todos::advance(&harness, by).await;
    }
    let rep = harness.sign_in("rep01").await;
    let page = harness.get("/board", Some(&rep.cookie)).await.page(StatusCode::OK);
    let lead = record_id(&harness, "opportunity", "name", "冲压线自动化改造");
    let lead_card = card(&page.body, &lead);
    assert!(lead_card.contains("<span class=\"stalled\">商机停滞</span>"), "{lead_card}");
    assert!(lead_card.contains("<span class=\"sla\">已超时</span>"), "{lead_card}");
    assert!(
        lead_card.contains(
            "<span class=\"review\" title=\"填写停滞原因并制定下一步计划\">待审查</span>"
        ),
        "{lead_card}"
    );
    assert!(!lead_card.contains("本阶段已 0 天"), "{lead_card}");
}
