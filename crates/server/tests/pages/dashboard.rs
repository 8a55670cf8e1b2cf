//! The `dashboard` page: who sees which figures, the filters, the server-drawn charts
//! and the CSV downloads, on the demo company (its targets are for 2026-Q4, 2027-Q1
//! and the months 2026-11 and 2026-12; its open deals are expected to close in 2027).

use super::*;

/// The part of a page between two markers.
fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let from = body.find(start).unwrap_or_else(|| panic!("{start} in {body}"));
    let rest = &body[from..];
    let to = rest.find(end).unwrap_or(rest.len());
    &rest[..to]
}

/// The coverage section of a dashboard page.
fn coverage(body: &str) -> &str {
    between(body, "<section id=\"coverage\">", "</section>")
}

/// The first number in the row of a CSV whose first cell is `label`.
fn csv_cell(csv: &str, label: &str) -> usize {
    csv.lines()
        .find_map(|line| line.strip_prefix(&format!("{label},")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|cell| cell.parse().ok())
        .unwrap_or_else(|| panic!("a row {label} in {csv}"))
}

#[tokio::test]
async fn the_director_sees_every_team_s_targets_charts_and_tables() {
    let harness = Harness::new();
    let director = harness.sign_in("director").await;
    let page =
        harness.get("/dashboard?period=2027-Q1", Some(&director.cookie)).await.page(StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("<title>业绩仪表盘 · Stagecraft</title>"), "{body}");
    assert!(body.contains("您可以查看全公司的数据。"), "{body}");
    let targets = coverage(body);
    for name in ["林晓峰", "吴婷", "高磊", "华东区", "华北区", "销售部"] {
        assert!(targets.contains(name), "{name} in {targets}");
    }
    // rep01's open deals expected in 2027-Q1: 1 200 000 (March) + 680 000 (February).
    assert!(targets.contains("<td>1,880,000</td>"), "{targets}");
    // One section per measured flow, with both charts as server-drawn images.
    for flow in ["sales-pipeline", "contract-approval", "repair"] {
        assert!(body.contains(&format!("<section id=\"flow-{flow}\">")), "{flow}");
        assert!(
            // Handlebars writes `=` in attributes as `&#x3D;`, which browsers read as `=`.
            body.contains(&format!(
                "src=\"/dashboard/charts/funnel-{flow}.svg?period&#x3D;2027-Q1\""
            )),
            "{body}"
        );
    }
    assert!(body.contains("id=\"table-funnel-sales-pipeline\""));
    assert!(body.contains("id=\"table-conversions-sales-pipeline\""));
    assert!(body.contains("id=\"table-stability-sales-pipeline\""));
    assert!(body.contains("线索转商机"), "the pack's named conversion: {body}");
    assert!(body.contains("大单（≥ 500,000）"), "win rate by size: {body}");
    assert!(body.contains("href=\"/dashboard/coverage.csv?period&#x3D;2027-Q1\""));
    assert!(body.contains("id=\"dashboard-links\""), "the place for more analyses");
    // The filters offer every team and person, the chosen period selected.
    let filters = between(body, "<form method=\"get\" action=\"/dashboard\"", "</form>");
    assert!(filters.contains("<option value=\"sales-north\">华北区</option>"), "{filters}");
    assert!(filters.contains("<option value=\"rep12\">曹雪</option>"), "{filters}");
    assert!(filters.contains("<option value=\"2027-Q1\" selected>"), "{filters}");
    assert!(!body.contains("{{"), "no template left unrendered");

    // In English.
    let english = harness
        .get("/dashboard?period=2027-Q1&lang=en", Some(&director.cookie))
        .await
        .page(StatusCode::OK);
    assert!(english.body.contains("Coverage of targets"), "{}", english.body);
    assert!(english.body.contains("Sales East"), "{}", english.body);
}

#[tokio::test]
async fn a_rep_sees_only_their_own_figures_and_other_people_are_refused() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let page =
        harness.get("/dashboard?period=2027-Q1", Some(&rep.cookie)).await.page(StatusCode::OK);
    let targets = coverage(&page.body);
    assert!(targets.contains("林晓峰"), "{targets}");
    for other in ["吴婷", "高磊", "华东区", "销售部"] {
        assert!(!targets.contains(other), "{other} in {targets}");
    }
    let filters = between(&page.body, "<form method=\"get\" action=\"/dashboard\"", "</form>");
    assert!(!filters.contains("rep02"), "only oneself to choose: {filters}");
    // Asking for someone else's figures, or another team's, is refused.
    for uri in
        ["/dashboard?rep=rep02", "/dashboard?team=sales-north", "/dashboard/coverage.csv?rep=rep09"]
    {
        let answer = harness.get(uri, Some(&rep.cookie)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{uri}: {}", answer.body);
    }
    let bad = harness.get("/dashboard?period=2027-Q9", Some(&rep.cookie)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("2027-Q9"), "{}", bad.body);
    // Not signed in: the login page.
    let anonymous = harness.get("/dashboard", None).await.expect(StatusCode::SEE_OTHER);
    assert!(anonymous.header("location").starts_with("/ui/login"), "{anonymous:?}");
}

#[tokio::test]
async fn a_regional_manager_sees_the_team_and_filters_narrow_it() {
    let harness = Harness::new();
    let manager = harness.sign_in("mgr-east").await;
    let page =
        harness.get("/dashboard?period=2027-Q1", Some(&manager.cookie)).await.page(StatusCode::OK);
    let targets = coverage(&page.body);
    for name in ["林晓峰", "吴婷", "华东区"] {
        assert!(targets.contains(name), "{name} in {targets}");
    }
    for other in ["高磊", "华北区", "销售部"] {
        assert!(!targets.contains(other), "{other} in {targets}");
    }
    let one = harness
        .get("/dashboard?period=2027-Q1&rep=rep02", Some(&manager.cookie))
        .await
        .page(StatusCode::OK);
    let targets = coverage(&one.body);
    assert!(targets.contains("吴婷") && !targets.contains("林晓峰"), "{targets}");
    let other_team = harness.get("/dashboard?team=sales-south", Some(&manager.cookie)).await;
    assert_eq!(other_team.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_table_downloads_as_csv_and_filters_change_the_figures() {
    let harness = Harness::new();
    let director = harness.sign_in("director").await;
    let answer = harness
        .get("/dashboard/coverage.csv?period=2027-Q1", Some(&director.cookie))
        .await
        .expect(StatusCode::OK);
    assert!(answer.header("content-type").starts_with("text/csv"), "{answer:?}");
    assert!(answer.header("content-disposition").contains("coverage-2027-Q1.csv"));
    assert!(answer.body.starts_with("\u{feff}对象,类型,流程,目标,"), "{}", answer.body);
    // Amounts with thousands separators are quoted; rep01's 2027-Q1 target is 1 980 000.
    assert!(
        answer.body.contains("\r\n林晓峰,个人,销售商机流程,\"1,980,000\",\"1,880,000\","),
        "{}",
        answer.body
    );

    // The funnel of the deals entered this quarter: everyone's, then rep01's only.
    let all = harness
        .get("/dashboard/funnel-sales-pipeline.csv", Some(&director.cookie))
        .await
        .expect(StatusCode::OK);
    assert!(all.body.starts_with("\u{feff}阶段,到达,转入下一阶段\r\n"), "{}", all.body);
    let everyone = csv_cell(&all.body, "线索获取");
    let one = harness
        .get("/dashboard/funnel-sales-pipeline.csv?rep=rep01", Some(&director.cookie))
        .await
        .expect(StatusCode::OK);
    let rep01 = csv_cell(&one.body, "线索获取");
    assert!(0 < rep01 && rep01 < everyone, "rep01 {rep01}, everyone {everyone}");
    let east = harness
        .get("/dashboard/funnel-sales-pipeline.csv?team=sales-east", Some(&director.cookie))
        .await
        .expect(StatusCode::OK);
    let team = csv_cell(&east.body, "线索获取");
    assert!(rep01 <= team && team < everyone, "rep01 {rep01}, east {team}, everyone {everyone}");

    // Every table the page links to downloads.
    let page = harness.get("/dashboard", Some(&director.cookie)).await.page(StatusCode::OK);
    let links: Vec<&str> = page
        .body
        .split("href=\"/dashboard/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|link| link.contains(".csv"))
        .collect();
    assert!(links.len() >= 10, "{links:?}");
    for link in links {
        let uri = format!("/dashboard/{}", link.replace("&#x3D;", "=").replace("&amp;", "&"));
        let answer = harness.get(&uri, Some(&director.cookie)).await.expect(StatusCode::OK);
        assert!(answer.body.starts_with('\u{feff}'), "{uri}");
    }
    let unknown = harness.get("/dashboard/nothing.csv", Some(&director.cookie)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn charts_are_svg_drawn_on_the_server() {
    let harness = Harness::new();
    let director = harness.sign_in("director").await;
    for (chart, text) in [("funnel", "线索获取"), ("weekly", "线索获取 → 初步接触")] {
        let uri = format!("/dashboard/charts/{chart}-sales-pipeline.svg");
        let answer = harness.get(&uri, Some(&director.cookie)).await.expect(StatusCode::OK);
        assert!(answer.header("content-type").starts_with("image/svg+xml"), "{answer:?}");
        assert!(answer.body.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(answer.body.contains(text), "{}", answer.body);
        assert!(!answer.body.contains("<script"), "no script in a chart");
    }
    let unknown =
        harness.get("/dashboard/charts/pie-sales-pipeline.svg", Some(&director.cookie)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}
