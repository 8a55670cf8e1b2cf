//! Every role of the demo company against every record endpoint, on a deal of rep01
//! with an uploaded needs survey in it: one table, each cell asserted. Those who may
//! not see the deal get 404 everywhere — the same answer as for a deal that does not
//! exist — and find it neither in a listing nor behind the file's id.

mod common;

use std::fmt;

use axum::http::StatusCode;
use serde_json::{Value, json};

use common::{Answer, Harness, record_uri};

/// What one endpoint answered one person.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// 200 with what was asked for.
    Done,
    /// 404, exactly like a record or file that does not exist.
    Hidden,
    /// 409: seen, but the flow refuses (a closed gate, nothing to decide).
    Refused,
    /// The listing (200) holds the deal.
    Listed,
    /// The listing (200) does not hold it.
    Unlisted,
    /// Anything else, with its status.
    Other(u16),
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Done => f.write_str("200"),
            Cell::Hidden => f.write_str("404"),
            Cell::Refused => f.write_str("409"),
            Cell::Listed => f.write_str("listed"),
            Cell::Unlisted => f.write_str("unlisted"),
            Cell::Other(status) => write!(f, "{status}!"),
        }
    }
}

use Cell::{Done, Hidden, Listed, Refused, Unlisted};

/// The columns: what each person is asked to do with rep01's deal.
const ENDPOINTS: [&str; 9] = [
    "GET record",
    "PATCH record",
    "POST transitions",
    "POST approvals",
    "GET events",
    "GET list",
    "GET list?owner",
    "GET file",
    "GET file info",
];

/// Who sees rep01's deal: rep01, their manager, the head of the regional centre above
/// the team, the sales director and the admin. A transition out of the lead stage is
/// refused by its gate (no region yet) and there is no approval in it, so those who
/// see the deal get 409 for both: the flow's answer, not access.
const MAY: [Cell; 9] = [Done, Done, Refused, Refused, Done, Listed, Listed, Done, Done];
/// Everyone else: the deal and its file do not exist for them.
const MAY_NOT: [Cell; 9] =
    [Hidden, Hidden, Hidden, Hidden, Hidden, Unlisted, Unlisted, Hidden, Hidden];

/// One row per person: every role of the demo, with someone in the owner's team and
/// someone in another team for the roles that have teams.
const MATRIX: [(&str, &str, [Cell; 9]); 14] = [
    ("rep01", "sales rep, the owner", MAY),
    ("rep02", "sales rep, same team", MAY_NOT),
    ("rep05", "sales rep, other team", MAY_NOT),
    ("mgr-east", "regional manager of the owner", MAY),
    ("mgr-south", "regional manager of another team", MAY_NOT),
    ("mgr-north", "regional manager of another team", MAY_NOT),
    ("dept-head", "department head above the team", MAY),
    ("director", "sales director", MAY),
    ("legal", "legal, nothing routed to them", MAY_NOT),
    ("finance", "finance BP, nothing routed to them", MAY_NOT),
    ("cs", "customer success", MAY_NOT),
    ("service-mgr", "after-sales service manager", MAY_NOT),
    ("eng01", "service engineer", MAY_NOT),
    ("admin", "administrator", MAY),
];

fn cell(answer: &Answer, id: &str) -> Cell {
    match answer.status {
        StatusCode::OK => Done,
        StatusCode::CONFLICT => Refused,
        StatusCode::NOT_FOUND => {
            // A hidden record reads exactly as a missing one.
            let detail = answer.body["detail"].as_str().unwrap_or_default();
            if detail == format!("there is no opportunity record {id}")
                || detail.starts_with("there is no file ")
            {
                Hidden
            } else {
                Cell::Other(404)
            }
        }
        other => Cell::Other(other.as_u16()),
    }
}

fn listed(answer: &Answer, id: &str) -> Cell {
    if answer.status != StatusCode::OK {
        return Cell::Other(answer.status.as_u16());
    }
    let records = answer.body["records"].as_array().cloned().unwrap_or_default();
    if records.iter().any(|record| record["id"] == json!(id)) { Listed } else { Unlisted }
}

#[tokio::test]
async fn every_role_against_every_endpoint_on_someone_elses_deal() {
    let server = Harness::new();
    let deal = server.deal("rep01").await;
    let id = deal["id"].as_str().expect("id").to_owned();
    let uri = record_uri(&deal);
    // rep01 files the needs survey on the deal.
    let owner = server.login("rep01").await;
    let survey = server.pdf(&owner, "客户需求调研表.pdf").await;
    let version = server.version(&id);
    server
        .patch(&uri, &owner, json!({"version": version, "fields": {"needs_survey": survey}}))
        .await
        .expect(StatusCode::OK);

    let mut table: Vec<(&str, [Cell; 9])> = Vec::new();
    for (user, _, _) in MATRIX {
        let token = server.login(user).await;
        let version = server.version(&id);
        let change =
            json!({"version": version, "fields": {"next_step_plan": format!("{user} 跟进")}});
        let answers = [
            cell(&server.get(&uri, &token).await, &id),
            cell(&server.patch(&uri, &token, change).await, &id),
            cell(
                &server
                    .post(&format!("{uri}/transitions"), &token, json!({"to": "first_contact"}))
                    .await,
                &id,
            ),
            cell(
                &server
                    .post(
                        &format!("{uri}/approvals/regional_manager_review"),
                        &token,
                        json!({"approve": true}),
                    )
                    .await,
                &id,
            ),
            cell(&server.get(&format!("{uri}/events"), &token).await, &id),
            listed(&server.get("/api/records/opportunity?limit=200", &token).await, &id),
            listed(&server.get("/api/records/opportunity?owner=rep01", &token).await, &id),
            cell(&server.get(&format!("/api/files/{survey}"), &token).await, &id),
            cell(&server.get(&format!("/api/files/{survey}/info"), &token).await, &id),
        ];
        table.push((user, answers));
    }

    let mut wrong = Vec::new();
    for ((user, role, expected), (_, actual)) in MATRIX.iter().zip(&table) {
        for (column, endpoint) in ENDPOINTS.iter().enumerate() {
            if expected[column] != actual[column] {
                wrong.push(format!(
                    "{user} ({role}) {endpoint}: expected {:?}, got {:?}",
                    expected[column], actual[column]
                ));
            }
        }
    }
    let printed: Vec<String> =
        table.iter().map(|(user, cells)| format!("{user:<10} {cells:?}")).collect();
    assert!(
        wrong.is_empty(),
        "{}\n\ncolumns: {ENDPOINTS:?}\n{}",
        wrong.join("\n"),
        printed.join("\n")
    );

    // Only those who may change the deal changed it.
    let events = server.get(&format!("{uri}/events"), &owner).await.expect(StatusCode::OK).body;
    let planners: Vec<&str> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["data"]["after"]["next_step_plan"].as_str())
        .collect();
    let may: Vec<String> = MATRIX
        .iter()
        .filter(|(_, _, cells)| *cells == MAY)
        .map(|(user, _, _)| format!("{user} 跟进"))
        .collect();
    assert_eq!(planners, may);
}

/// Legal sees a contract while its review task is open, and with it the contract's
/// files; finance and the other reps do not.
#[tokio::test]
async fn legal_sees_a_routed_contract_and_its_draft_while_the_task_is_open() {
    let server = Harness::new();
    let legal = server.login("legal").await;
    let tasks = server.get("/api/tasks", &legal).await.expect(StatusCode::OK).body;
    let contract: Value = tasks["tasks"][0]["data"]["record"].clone();
    let contract = contract.as_str().expect("a contract routed to legal").to_owned();
    let uri = format!("/api/records/contract/{contract}");
    let owner = server.get(&uri, &legal).await.expect(StatusCode::OK).body["owner"]
        .as_str()
        .expect("an owner")
        .to_owned();
    let owner_token = server.login(&owner).await;
    let draft = server.pdf(&owner_token, "合同草稿.pdf").await;
    let version = server.version(&contract);
    server
        .patch(&uri, &owner_token, json!({"version": version, "fields": {"draft_file": draft}}))
        .await
        .expect(StatusCode::OK);
    let file = format!("/api/files/{draft}");
    for (user, expected) in [
        ("legal", StatusCode::OK),
        (owner.as_str(), StatusCode::OK),
        ("finance", StatusCode::NOT_FOUND),
        ("rep01", StatusCode::NOT_FOUND),
        ("cs", StatusCode::NOT_FOUND),
    ] {
        let token = server.login(user).await;
        assert_eq!(server.get(&uri, &token).await.status, expected, "{user} reads the contract");
        assert_eq!(server.get(&file, &token).await.status, expected, "{user} downloads its draft");
    }
}
