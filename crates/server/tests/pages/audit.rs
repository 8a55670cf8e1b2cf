//! The `audit` page (`/audit`, its CSV files) and the adoption page
//! (`/dashboard/adoption`).

use chrono::{Duration, FixedOffset, Utc};

use super::*;

/// Today in China, minus some days, as `YYYY-MM-DD`.
fn days_ago(harness: &Harness, days: i64) -> String {
    let china = FixedOffset::east_opt(8 * 3600).expect("an offset");
    let now = chrono::DateTime::<Utc>::from_timestamp_millis(harness.state.engine().now())
        .expect("a time");
    (now.with_timezone(&china).date_naive() - Duration::days(days)).to_string()
}

/// rep01 enters an opportunity 60 days after it came up; its record path.
async fn late_opportunity(harness: &Harness, rep: &Browser) -> String {
    let customer = harness.new_customer(rep, "审计测试客户有限公司").await;
    let customer = customer.rsplit('/').next().expect("a customer id").to_owned();
    let found_on = days_ago(harness, 60);
    let csrf = harness.csrf(rep).await;
    let answer = harness
        .post(
            "/ui/records/opportunity",
            Some(&rep.cookie),
            &[
                ("_csrf", &csrf),
                ("name", "补录的商机"),
                ("customer", &customer),
                ("amount", "300000"),
                ("expected_close_date", "2027-06-30"),
                ("found_on", &found_on),
                ("region", "east"),
            ],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    let location = answer.header("location").to_owned();
    assert!(location.starts_with("/ui/records/opportunity/"), "{location}");
    location.split('#').next().unwrap_or(&location).to_owned()
}

/// The HTML of one table of a page.
fn table<'a>(body: &'a str, id: &str) -> &'a str {
    let start = body.find(&format!("id=\"table-{id}\"")).unwrap_or_else(|| panic!("{id}: {body}"));
    let end = body[start..].find("</table>").map_or(body.len(), |end| start + end);
    &body[start..end]
}

#[tokio::test]
async fn a_manager_sees_the_late_entry_of_the_team_linked_and_a_rep_is_refused() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let record = late_opportunity(&harness, &rep).await;

    let manager = harness.sign_in("mgr-east").await;
    let page = harness.get("/audit", Some(&manager.cookie)).await.page(StatusCode::OK);
    let body = &page.body;
    assert!(body.contains("<title>流程审计 · Stagecraft</title>"), "{body}");
    for section in ["thresholds", "late", "skips", "overrides", "rushes", "stages"] {
        assert!(body.contains(&format!("<section id=\"{section}\">")), "{section}: {body}");
        // (handlebars writes `=` as `&#x3D;`.)
        assert!(body.contains(&format!("href=\"/audit/{section}.csv?from&#x3D;")), "{section}");
    }
    // The period filter, 90 days up to today by default.
    assert!(body.contains(&format!("name=\"to\" value=\"{}\"", days_ago(&harness, 0))), "{body}");
    assert!(body.contains(&format!("name=\"from\" value=\"{}\"", days_ago(&harness, 89))));
    // The late entry, linked to its record, with who entered it and how late.
    let late = table(body, "late");
    assert!(late.contains(&format!("<a href=\"{record}\">补录的商机</a>")), "{late}");
    assert!(late.contains("<td>林晓峰</td>") && late.contains("<td>59</td>"), "{late}");
    // The thresholds the pack declares are shown.
    let thresholds = table(body, "thresholds");
    assert!(thresholds.contains("<td>销售商机流程</td>"), "{thresholds}");
    assert!(thresholds.contains("3 次推进 / 10 分钟内") && thresholds.contains("stalled-deal"));
    assert!(table(body, "stages").contains("<td>线索获取</td>"), "{body}");

    // Another region's manager does not see it; the director does.
    let south = harness.sign_in("mgr-south").await;
    let other = harness.get("/audit", Some(&south.cookie)).await.page(StatusCode::OK);
    assert!(!other.body.contains(&record), "{}", other.body);
    let director = harness.sign_in("director").await;
    let all = harness.get("/audit?lang=en", Some(&director.cookie)).await.page(StatusCode::OK);
    assert!(all.body.contains("<h1>Process-health audit</h1>"), "{}", all.body);
    assert!(all.body.contains("You see every record."));
    assert!(table(&all.body, "late").contains(&record));

    // A rep is refused, with the reason, also for the files.
    let refused = harness.get("/audit", Some(&rep.cookie)).await.page(StatusCode::FORBIDDEN);
    assert!(
        refused.body.contains("流程审计仅供经理和可查看全部记录的角色使用。"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains(&record));
    harness.get("/audit/late.csv", Some(&rep.cookie)).await.expect(StatusCode::FORBIDDEN);
    // Without a session: the login page, coming back here.
    let anonymous = harness.get("/audit", None).await.expect(StatusCode::SEE_OTHER);
    assert_eq!(anonymous.header("location"), "/ui/login?next=/audit");
}

#[tokio::test]
async fn every_audit_table_downloads_as_csv_with_a_byte_order_mark() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    late_opportunity(&harness, &rep).await;
    let director = harness.sign_in("director").await;

    let csv = harness.get("/audit/late.csv", Some(&director.cookie)).await.expect(StatusCode::OK);
    assert_eq!(csv.header("content-type"), "text/csv; charset=utf-8");
    assert!(csv.header("content-disposition").starts_with("attachment; filename=\"audit-late-"));
    assert!(
        csv.body.starts_with("\u{feff}记录,流程,负责人,录入人,录入时间,晚录天数\r\n"),
        "{:?}",
        csv.body
    );
    assert!(csv.body.contains("补录的商机,销售商机流程,林晓峰,林晓峰,"), "{}", csv.body);
    let english = harness
        .get("/audit/stages.csv?lang=en", Some(&director.cookie))
        .await
        .expect(StatusCode::OK);
    assert!(
        english.body.starts_with("\u{feff}Flow,Stage,Records entered,Records stalled,Share stalled,Rigid,Stalled records\r\n"),
        "{:?}",
        english.body
    );
    for name in ["thresholds", "skips", "overrides", "rushes"] {
        let file = harness
            .get(
                &format!("/audit/{name}.csv?from=2026-01-01&to=2026-12-31"),
                Some(&director.cookie),
            )
            .await
            .expect(StatusCode::OK);
        assert!(file.body.starts_with('\u{feff}'), "{name}");
    }
    harness.get("/audit/other.csv", Some(&director.cookie)).await.page(StatusCode::NOT_FOUND);
    // A date that is not one, or a period that ends before it starts, is refused plainly.
    let bad = harness.get("/audit?from=2026-13-01", Some(&director.cookie)).await;
    let bad = bad.page(StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("2026-13-01"), "{}", bad.body);
    harness
        .get("/audit?from=2026-11-30&to=2026-11-01", Some(&director.cookie))
        .await
        .page(StatusCode::BAD_REQUEST);
}

/// The entry-rate cell (`hit/total (share)`) of a person's newest week: its numbers.
fn newest_entries(body: &str, name: &str) -> (u32, u32) {
    let weeks = table(body, "weeks");
    let row = weeks
        .split("<tr>")
        .find(|row| row.starts_with(&format!("<td>{name}</td>")))
        .unwrap_or_else(|| panic!("a row of {name}: {weeks}"));
    let cells: Vec<&str> = row.split("<td>").map(|cell| cell.trim_end_matches("</td>")).collect();
    // "", person, week, flow, entries, …
    let entries = cells.get(4).copied().unwrap_or_default();
    let (hit, rest) = entries.split_once('/').unwrap_or_else(|| panic!("{entries}"));
    let total = rest.split_whitespace().next().unwrap_or_default();
    (hit.parse().expect("a number"), total.parse().expect("a number"))
}

#[tokio::test]
async fn the_adoption_page_shows_my_weeks_my_team_and_the_star() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep01").await;
    let before = harness.get("/dashboard/adoption", Some(&rep.cookie)).await.page(StatusCode::OK);
    let (hit, total) = newest_entries(&before.body, "林晓峰");
    late_opportunity(&harness, &rep).await;

    let mine = harness.get("/dashboard/adoption", Some(&rep.cookie)).await.page(StatusCode::OK);
    let body = &mine.body;
    assert!(body.contains("<h2>本月透明度之星</h2>"), "{body}");
    assert!(body.contains("您看到的是本人的数据。"), "{body}");
    let weeks = table(body, "weeks");
    // This week: the late opportunity is one more entry, not in time.
    assert_eq!(newest_entries(body, "林晓峰"), (hit, total + 1), "{weeks}");
    assert!(!weeks.contains("吴婷") && !weeks.contains("梁志强"), "only my rows: {weeks}");
    // The rules come from the pack.
    assert!(body.contains("销售商机流程：录入时限 30 天，阶段更新时限 7 天"), "{body}");

    // The manager sees the team; in English too.
    let manager = harness.sign_in("mgr-east").await;
    let team = harness
        .get("/dashboard/adoption?lang=en", Some(&manager.cookie))
        .await
        .page(StatusCode::OK);
    assert!(team.body.contains("This month&#x27;s transparency star"), "{}", team.body);
    assert!(team.body.contains("You see your own and your team&#x27;s figures."), "{}", team.body);
    assert!(table(&team.body, "weeks").contains("<td>林晓峰</td>"));
    assert!(!table(&team.body, "weeks").contains("梁志强"), "not another region");
}

#[tokio::test]
async fn the_menu_offers_the_audit_and_the_import_only_to_those_they_serve() {
    let harness = Harness::new();
    for (user, audit, import) in
        [("rep01", false, false), ("mgr-east", true, false), ("director", true, true)]
    {
        let browser = harness.sign_in(user).await;
        let page = harness.get("/todos", Some(&browser.cookie)).await.page(StatusCode::OK);
        let menu = &page.body[page.body.find("id=\"menu\"").expect("the menu")..];
        let menu = &menu[..menu.find("</nav>").expect("its end")];
        assert_eq!(menu.contains("href=\"/audit\""), audit, "{user}: {menu}");
        assert_eq!(menu.contains("href=\"/import\""), import, "{user}: {menu}");
        assert!(menu.contains("href=\"/dashboard\""), "{user}: {menu}");
    }
}
