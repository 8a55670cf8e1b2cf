//! Listing records (filters, cursors, authorization in the query), the definitions and
//! the org as clients read them, and uploaded files: stored under generated ids,
//! checked for size and content, linked to records through file fields, and served
//! only to those who may see them.

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use stagecraft_store::{Commit, RecordId, RecordWrite};

use common::{Harness, record_uri};

const FIFTY_MIB: usize = 50 * 1024 * 1024;

fn ids(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|record| record["id"].as_str().map(str::to_owned))
        .collect()
}

/// Every page of a listing, following `next`; the ids, and how many requests it took.
async fn every_page(server: &Harness, token: &str, uri: &str) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    let mut requests = 0;
    let mut next: Option<String> = None;
    loop {
        let separator = if uri.contains('?') { '&' } else { '?' };
        let page_uri = match &next {
            Some(cursor) => format!("{uri}{separator}cursor={cursor}"),
            None => uri.to_owned(),
        };
        let page = server.get(&page_uri, token).await.expect(StatusCode::OK).body;
        requests += 1;
        found.extend(ids(&page));
        match page["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => {
                assert!(page["next"].is_null(), "{page}");
                return (found, requests);
            }
        }
        assert!(requests < 1000, "the listing never ends");
    }
}

fn owner_of(server: &Harness, id: &str) -> Option<String> {
    server.state.engine().record(id).expect("read").and_then(|record| record.owner)
}

// ----- listing --------------------------------------------------------------------------------

#[tokio::test]
async fn a_listing_pages_through_every_record_with_a_cursor() {
    let server = Harness::new();
    let director = server.login("director").await;
    let all = server.all("opportunity");
    assert!(all.len() >= 7, "{all:?}");
    let (listed, requests) =
        every_page(&server, &director, "/api/records/opportunity?limit=3").await;
    assert_eq!(listed, all, "every deal once, by creation time");
    assert_eq!(requests, all.len().div_ceil(3));
    let first = server.get("/api/records/opportunity", &director).await.expect(StatusCode::OK).body;
    assert_eq!(ids(&first), all[..all.len().min(50)], "50 a page by default");
    if all.len() <= 50 {
        assert_eq!(first["next"], Value::Null);
    } else {
        assert!(first["next"].is_string(), "a cursor to the rest");
    }
    // The records are the records as read one by one.
    let one = &first["records"][0];
    let read = server.get(&record_uri(one), &director).await.expect(StatusCode::OK).body;
    assert_eq!(one, &read);
}

#[tokio::test]
async fn filters_find_records_by_indexed_fields_owner_and_stage() {
    let server = Harness::new();
    let director = server.login("director").await;
    let in_stage = server.indexed("opportunity", "stage", "needs_confirmed");
    assert!(!in_stage.is_empty());
    let (listed, _) =
        every_page(&server, &director, "/api/records/opportunity?stage=needs_confirmed&limit=1")
            .await;
    assert_eq!(listed, in_stage);
    // Several filters: all of them hold, in any order of the parameters.
    let south_first_contact: Vec<String> = server
        .indexed("opportunity", "stage", "first_contact")
        .into_iter()
        .filter(|id| owner_of(&server, id).as_deref() == Some("rep05"))
        .collect();
    assert!(!south_first_contact.is_empty());
    for uri in [
        "/api/records/opportunity?owner=rep05&stage=first_contact",
        "/api/records/opportunity?stage=first_contact&owner=rep05&limit=1",
    ] {
        assert_eq!(every_page(&server, &director, uri).await.0, south_first_contact, "{uri}");
    }
    // Values are read as the field's type: `amount` is a number, `region` text, a link
    // an id.
    let page = server
        .get("/api/records/opportunity?amount=1200000", &director)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["records"][0]["fields"]["name"], "冲压线自动化改造");
    let customer = page["records"][0]["fields"]["customer"].as_str().expect("customer").to_owned();
    let of_customer = server.indexed("opportunity", "customer", &customer);
    let (listed, _) =
        every_page(&server, &director, &format!("/api/records/opportunity?customer={customer}"))
            .await;
    assert_eq!(listed, of_customer);
    assert!(listed.len() >= 2, "{listed:?}");
    let page = server
        .get("/api/records/customer?region=east&level=a", &director)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(page["records"][0]["fields"]["name"], "苏州精工机械有限公司");
    // Percent-encoded values are decoded.
    let created = server.deal("rep01").await;
    let name = created["fields"]["customer"].as_str().expect("customer");
    let uri = format!("/api/records/opportunity?customer={}", common::percent(name));
    assert_eq!(
        ids(&server.get(&uri, &director).await.expect(StatusCode::OK).body),
        [created["id"].as_str().expect("id").to_owned()]
    );
}

#[tokio::test]
async fn a_listing_holds_only_what_the_caller_may_read_and_still_fills_its_pages() {
    let server = Harness::new();
    server.deal("rep05").await;
    let all = server.all("opportunity");
    let of = |owners: &[&str]| -> Vec<String> {
        all.iter()
            .filter(|id| {
                owner_of(&server, id).is_some_and(|owner| owners.contains(&owner.as_str()))
            })
            .cloned()
            .collect()
    };
    // rep05's deals are not the first ones created, yet every page of one is full.
    let rep = server.login("rep05").await;
    let mine = of(&["rep05"]);
    assert!(mine.len() >= 2 && all.first() != mine.first(), "{all:?} {mine:?}");
    let first =
        server.get("/api/records/opportunity?limit=1", &rep).await.expect(StatusCode::OK).body;
    assert_eq!(ids(&first), mine[..1]);
    assert!(first["next"].is_string());
    assert_eq!(every_page(&server, &rep, "/api/records/opportunity?limit=1").await.0, mine);
    // A manager sees the team, the department head the regions, the director all.
    let south = server.login("mgr-south").await;
    assert_eq!(
        every_page(&server, &south, "/api/records/opportunity").await.0,
        of(&["rep05", "rep06", "rep07", "rep08"])
    );
    let head = server.login("dept-head").await;
    assert_eq!(every_page(&server, &head, "/api/records/opportunity?limit=2").await.0, all);
    // Filtering on someone you may not see finds nothing, like filtering on no one.
    let nothing = server
        .get("/api/records/opportunity?owner=rep09", &south)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(nothing, json!({"records": [], "next": null}));
    // Customer success sees no deal; legal sees the contract routed to them.
    let cs = server.login("cs").await;
    let empty = server.get("/api/records/opportunity", &cs).await.expect(StatusCode::OK).body;
    assert_eq!(empty, json!({"records": [], "next": null}));
    let legal = server.login("legal").await;
    let contracts = server.get("/api/records/contract", &legal).await.expect(StatusCode::OK).body;
    let routed: Vec<String> =
        server.get("/api/tasks", &legal).await.expect(StatusCode::OK).body["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|task| task["data"]["record"].as_str().map(str::to_owned))
            .collect();
    assert_eq!(ids(&contracts), routed);
}

#[tokio::test]
async fn one_listing_request_looks_at_a_bounded_number_of_records() {
    let server = Harness::new();
    // 2100 deals of rep02, created before everything else, hidden from rep01.
    let template = server
        .state
        .engine()
        .record(&server.indexed("opportunity", "owner", "rep02")[0])
        .expect("read")
        .expect("a deal of rep02");
    let mut commit = Commit::at(1);
    for number in 0..2100 {
        let id = format!("bulk-{number:05}");
        let mut record = template.clone();
        record.id = id.clone();
        record.tasks.clear();
        commit.records.push(
            RecordWrite::create(RecordId::new(id), "opportunity", json!(record))
                .indexed("owner", "rep02"),
        );
    }
    server.state.engine().store().commit(commit).expect("the bulk commit");
    let rep = server.login("rep01").await;
    // The first request looks at 2000 hidden deals and stops with a cursor to go on.
    let first = server.get("/api/records/opportunity", &rep).await.expect(StatusCode::OK).body;
    assert_eq!(first["records"], json!([]));
    assert!(first["next"].is_string(), "{first}");
    let (mine, requests) = every_page(&server, &rep, "/api/records/opportunity").await;
    assert_eq!(requests, 2);
    let expected: Vec<String> = server
        .all("opportunity")
        .into_iter()
        .filter(|id| owner_of(&server, id).as_deref() == Some("rep01"))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(mine, expected);
    // The director sees them all, 200 a page.
    let director = server.login("director").await;
    let (all, requests) =
        every_page(&server, &director, "/api/records/opportunity?limit=200").await;
    assert_eq!(all.len(), server.all("opportunity").len());
    assert_eq!(requests, all.len().div_ceil(200));
}

#[tokio::test]
async fn listing_parameters_are_checked_and_named_in_the_answer() {
    let server = Harness::new();
    let rep = server.login("rep01").await;
    let detail = |uri: &'static str| {
        let server = &server;
        let rep = rep.clone();
        async move { server.get(uri, &rep).await.detail(StatusCode::BAD_REQUEST) }
    };
    let unknown = detail("/api/records/opportunity?colour=red").await;
    assert!(unknown.starts_with("`colour` is not a field of form `opportunity`"), "{unknown}");
    for filterable in
        ["`amount`", "`customer`", "`expected_close_date`", "`owner`", "`region`", "`stage`"]
    {
        assert!(unknown.contains(filterable), "{unknown} lacks {filterable}");
    }
    let not_indexed = detail("/api/records/opportunity?name=x").await;
    assert!(
        not_indexed.contains("`name` is a field of form `opportunity`, but not one"),
        "{not_indexed}"
    );
    let wrong_type = detail("/api/records/opportunity?amount=lots").await;
    assert_eq!(wrong_type, "`amount` holds numbers; `lots` is not one");
    let stage = detail("/api/records/opportunity?stage=nowhere").await;
    assert!(stage.contains("lead, first_contact, needs_confirmed"), "{stage}");
    for bad_limit in [
        "/api/records/opportunity?limit=0",
        "/api/records/opportunity?limit=201",
        "/api/records/opportunity?limit=ten",
        "/api/records/opportunity?limit=-1",
    ] {
        assert!(detail(bad_limit).await.contains("from 1 to 200"), "{bad_limit}");
    }
    let twice = detail("/api/records/opportunity?region=east&region=south").await;
    assert!(twice.starts_with("give `region` once"), "{twice}");
    for bad_cursor in [
        "/api/records/opportunity?cursor=zz",
        "/api/records/opportunity?cursor=6e6f2d73756368",
        "/api/records/opportunity?cursor=",
    ] {
        assert!(detail(bad_cursor).await.contains("the cursor is not one"), "{bad_cursor}");
    }
    let encoding = detail("/api/records/opportunity?region=%FF").await;
    assert!(encoding.contains("UTF-8"), "{encoding}");
    for missing in [
        "/api/records/no_such_form",
        "/api/records/_file",
        "/api/records/_credential",
        "/api/records/_server",
    ] {
        server.get(missing, &rep).await.problem(StatusCode::NOT_FOUND);
    }
    server
        .call(Method::GET, "/api/records/opportunity", None, None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

// ----- definitions and org ------------------------------------------------------------------

#[tokio::test]
async fn definitions_describe_forms_and_flows_to_everyone_signed_in() {
    let server = Harness::new();
    let cs = server.login("cs").await;
    let forms = server.get("/api/forms", &cs).await.expect(StatusCode::OK).body;
    let opportunity = forms["forms"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|form| form["id"] == "opportunity")
        .expect("the opportunity form")
        .clone();
    assert_eq!(opportunity["title"], json!({"zh-CN": "商机", "en": "Opportunity"}));
    assert_eq!(opportunity["pack"], "sales");
    assert_eq!(opportunity["flows"], json!(["sales-pipeline"]));
    let count = server.state.engine().definitions().forms.len();
    assert_eq!(forms["forms"].as_array().map(Vec::len), Some(count));

    let form = server.get("/api/forms/opportunity", &cs).await.expect(StatusCode::OK).body;
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("schemas/sales/opportunity.json"))
            .expect("the form file"),
    )
    .expect("json");
    assert_eq!(form["schema"], written, "the schema as written, x- hints and all");
    assert_eq!(form["fields"]["needs_survey"]["file"], true);
    assert_eq!(form["fields"]["customer"]["link"], "customer");
    assert_eq!(form["fields"]["customer"]["required"], true);
    assert_eq!(form["fields"]["region"]["filterable"], true);
    assert_eq!(form["fields"]["name"]["filterable"], false);
    assert_eq!(
        form["fields"]["amount"]["label"],
        json!({"zh-CN": "预计金额（元）", "en": "Expected amount (CNY)"})
    );
    assert_eq!(
        form["filterable"],
        json!([
            "amount",
            "customer",
            "expected_close_date",
            "owner",
            "product_line",
            "region",
            "stage"
        ])
    );
    let repair = server.get("/api/forms/repair_request", &cs).await.expect(StatusCode::OK).body;
    assert_eq!(repair["fields"]["photos"]["file"], true, "a list of files is a file field");
    assert_eq!(repair["fields"]["photos"]["types"], json!(["array"]));
    server.get("/api/forms/no_such_form", &cs).await.problem(StatusCode::NOT_FOUND);
    server.get("/api/forms/_file", &cs).await.problem(StatusCode::NOT_FOUND);

    let flows = server.get("/api/flows", &cs).await.expect(StatusCode::OK).body;
    let pipeline = flows["flows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|flow| flow["id"] == "sales-pipeline")
        .expect("the pipeline")
        .clone();
    assert_eq!(pipeline["form"], "opportunity");
    let stages: Vec<&str> = pipeline["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(
        stages,
        ["lead", "first_contact", "needs_confirmed", "proposal", "negotiation", "won", "lost"]
    );
    assert_eq!(
        pipeline["stages"][2]["title"],
        json!({"zh-CN": "需求确认", "en": "Needs confirmed"})
    );
    assert_eq!(pipeline["stages"][5]["outcome"], "won");

    let flow = server.get("/api/flows/sales-pipeline", &cs).await.expect(StatusCode::OK).body;
    let definition = &flow["definition"];
    assert_eq!(definition["stages"][2]["approvals"][0]["id"], "regional_manager_review");
    assert_eq!(definition["stages"][2]["actions"][0]["fields"], json!(["needs_survey"]));
    assert_eq!(definition["stages"][2]["exit"][0]["rule"], "needs_survey_uploaded");
    assert!(definition["transitions"].as_array().is_some_and(|t| !t.is_empty()));
    assert_eq!(flow["gates"]["needs_survey_uploaded"]["script"], "filled(record.needs_survey)");
    server.get("/api/flows/no-such-flow", &cs).await.problem(StatusCode::NOT_FOUND);
    for uri in ["/api/forms", "/api/forms/opportunity", "/api/flows", "/api/flows/sales-pipeline"] {
        server.call(Method::GET, uri, None, None).await.problem(StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn the_org_is_readable_without_password_data() {
    let server = Harness::new();
    let rep = server.login("rep01").await;
    let me = server.get("/api/org/me", &rep).await.expect(StatusCode::OK).body;
    assert_eq!(me["id"], "rep01");
    assert_eq!(me["name"], "林晓峰");
    assert_eq!(me["roles"], json!(["sales_rep"]));
    assert_eq!(me["department"], "sales-east");
    assert_eq!(me["manager"], "mgr-east");
    assert_eq!(me["reports"], json!([]));
    let manager = server.login("mgr-east").await;
    let me = server.get("/api/org/me", &manager).await.expect(StatusCode::OK).body;
    assert_eq!(me["reports"], json!(["rep01", "rep02", "rep03", "rep04"]));
    let director = server.login("director").await;
    let me = server.get("/api/org/me", &director).await.expect(StatusCode::OK).body;
    assert_eq!(me["reports"], json!(["dept-head", "mgr-east", "mgr-north", "mgr-south"]));
    assert_eq!(me["team"].as_array().map(Vec::len), Some(16), "{me}");

    let users = server.get("/api/org/users", &rep).await.expect(StatusCode::OK).body;
    let people = users["users"].as_array().cloned().unwrap_or_default();
    assert_eq!(people.len(), 24);
    let legal = people.iter().find(|person| person["id"] == "legal").expect("legal");
    assert_eq!(
        legal,
        &json!({"id": "legal", "name": "李律师", "roles": ["legal"], "department": "legal", "manager": null})
    );
    let text = users.to_string();
    for secret in ["hash", "password", "argon2", "token"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let departments = server.get("/api/org/departments", &rep).await.expect(StatusCode::OK).body;
    let east = departments["departments"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|department| department["id"] == "sales-east")
        .expect("sales-east")
        .clone();
    assert_eq!(
        east,
        json!({"id": "sales-east", "title": {"zh-CN": "华东区", "en": "Sales East"}, "parent": "sales-regions", "head": "mgr-east"})
    );
    for uri in ["/api/org/me", "/api/org/users", "/api/org/departments"] {
        server.call(Method::GET, uri, None, None).await.problem(StatusCode::UNAUTHORIZED);
    }
}

// ----- uploads --------------------------------------------------------------------------------

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What is in the files folder: the stored files, and no leftovers.
fn stored_files(server: &Harness) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(server.data().join("files"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn an_upload_is_stored_under_a_generated_id_and_downloads_as_an_attachment() {
    let server = Harness::new();
    let rep = server.login("rep01").await;
    let content = b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n".to_vec();
    let answer = server
        .upload(&rep, "application/pdf", Some("C:\\扫描\\客户需求调研表 v2.pdf"), content.clone())
        .await
        .expect(StatusCode::CREATED);
    let file = answer.body.clone();
    let id = file["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase()));
    assert_eq!(answer.header("location"), format!("/api/files/{id}"));
    assert_eq!(file["name"], "客户需求调研表 v2.pdf", "folders are dropped");
    assert_eq!(file["content_type"], "application/pdf");
    assert_eq!(file["size"], content.len());
    assert_eq!(file["sha256"], sha256(&content));
    assert_eq!(file["uploader"], "rep01");
    assert_eq!(file["uploaded_at"], server.state.engine().now());
    // On disk under its id, and described by an internal record.
    assert_eq!(stored_files(&server), [id.as_str()]);
    assert_eq!(std::fs::read(server.data().join("files").join(&id)).expect("stored"), content);
    let described = server
        .state
        .engine()
        .store()
        .record(&RecordId::new(format!("_file/{id}")))
        .expect("read")
        .expect("the file's record");
    assert_eq!(described.form, "_file");
    assert_eq!(described.value, file);
    // The uploader downloads it as an attachment, with its name in both forms.
    let download = server.get(&format!("/api/files/{id}"), &rep).await.expect(StatusCode::OK);
    assert_eq!(download.bytes, content);
    assert_eq!(download.header("content-type"), "application/pdf");
    assert_eq!(download.header("content-length"), content.len().to_string());
    assert_eq!(download.header("x-content-type-options"), "nosniff");
    assert_eq!(
        download.header("content-disposition"),
        "attachment; filename=\"_______ v2.pdf\"; \
         filename*=UTF-8''%E5%AE%A2%E6%88%B7%E9%9C%80%E6%B1%82%E8%B0%83%E7%A0%94%E8%A1%A8%20v2.pdf"
    );
    let info = server.get(&format!("/api/files/{id}/info"), &rep).await.expect(StatusCode::OK);
    assert_eq!(info.body, file);
    // Nobody else finds it: the same answer as for a file that does not exist.
    let other = server.login("rep02").await;
    for uri in [format!("/api/files/{id}"), format!("/api/files/{id}/info")] {
        let hidden = server.get(&uri, &other).await.detail(StatusCode::NOT_FOUND);
        assert_eq!(hidden, format!("there is no file {id}"));
    }
    let missing = "0123456789abcdef0123456789abcdef";
    let detail =
        server.get(&format!("/api/files/{missing}"), &rep).await.detail(StatusCode::NOT_FOUND);
    assert_eq!(detail, format!("there is no file {missing}"));
    for odd in ["..%2F..%2Fetc%2Fpasswd", "_file", "ABCDEF0123456789ABCDEF0123456789"] {
        server.get(&format!("/api/files/{odd}"), &rep).await.problem(StatusCode::NOT_FOUND);
    }
    // Its description is never served as a record.
    let admin = server.login("admin").await;
    server
        .get(&format!("/api/records/_file/_file%2F{id}"), &admin)
        .await
        .problem(StatusCode::NOT_FOUND);
    // A name is optional; without one the file is called after its type.
    let csv = "客户,金额\n苏州精工,1200000\n";
    let answer =
        server.upload(&rep, "text/csv; charset=utf-8", None, csv).await.expect(StatusCode::CREATED);
    assert_eq!(answer.body["name"], "upload.csv");
    assert_eq!(answer.body["content_type"], "text/csv");
    let download = server
        .get(&format!("/api/files/{}", answer.body["id"].as_str().expect("id")), &rep)
        .await
        .expect(StatusCode::OK);
    assert_eq!(download.header("content-type"), "text/csv; charset=utf-8");
    assert_eq!(download.bytes, csv.as_bytes());
    server.call(Method::POST, "/api/files", None, None).await.problem(StatusCode::UNAUTHORIZED);
}

/// A body that streams `chunks` copies of `chunk`, without a length.
struct Repeated {
    chunk: Bytes,
    chunks: usize,
}

impl futures_core::Stream for Repeated {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.chunks == 0 {
            return Poll::Ready(None);
        }
        self.chunks -= 1;
        Poll::Ready(Some(Ok(self.chunk.clone())))
    }
}

#[tokio::test]
async fn uploads_are_refused_by_type_content_and_size() {
    let server = Harness::new();
    let rep = server.login("rep01").await;
    let unsupported = |answer: common::Answer| {
        let problem = answer.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(problem["type"], "urn:stagecraft:problem:unsupported-file-type");
        problem["detail"].as_str().unwrap_or_default().to_owned()
    };
    let html =
        unsupported(server.upload(&rep, "text/html", Some("x.html"), "<script>1</script>").await);
    assert!(html.starts_with("files of type `text/html` are not accepted"), "{html}");
    assert!(html.contains("application/pdf") && html.contains("image/png"), "{html}");
    let svg = unsupported(server.upload(&rep, "image/svg+xml", None, "<svg/>").await);
    assert!(svg.contains("`image/svg+xml`"), "{svg}");
    let request = Request::post("/api/files")
        .header("authorization", format!("Bearer {rep}"))
        .body(Body::from("%PDF-1.7"))
        .expect("request");
    let untyped = unsupported(server.send(request).await);
    assert!(untyped.starts_with("send the file's type as the content type"), "{untyped}");
    // The first bytes must be what the type says.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let png_as_pdf = unsupported(server.upload(&rep, "application/pdf", None, png.clone()).await);
    assert!(png_as_pdf.contains("it looks like a PNG image (`image/png`)"), "{png_as_pdf}");
    let page_as_pdf = unsupported(
        server.upload(&rep, "application/pdf", None, "<html><script>alert(1)</script>").await,
    );
    assert!(page_as_pdf.contains("none of the accepted kinds"), "{page_as_pdf}");
    let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    unsupported(server.upload(&rep, docx, Some("a.docx"), "%PDF-1.4").await);
    let gbk: &[u8] = b"name,amount\n\xbf\xcd\xbb\xa7,1\n";
    let gbk = unsupported(server.upload(&rep, "text/csv", None, gbk.to_vec()).await);
    assert!(gbk.contains("not UTF-8 text (byte 12)") && gbk.contains("CSV UTF-8"), "{gbk}");
    unsupported(server.upload(&rep, "text/csv; charset=gbk", None, "a,b\n").await);
    unsupported(server.upload(&rep, "text/plain", None, b"a\0b".to_vec()).await);
    // Empty files, bad names and parameters.
    let empty =
        server.upload(&rep, "application/pdf", None, "").await.detail(StatusCode::BAD_REQUEST);
    assert!(empty.starts_with("the file is empty"), "{empty}");
    let long = "名".repeat(201) + ".pdf";
    let named = server.upload(&rep, "application/pdf", Some(&long), "%PDF-1.7").await;
    assert!(named.detail(StatusCode::BAD_REQUEST).contains("longer than 200 characters"));
    let request = Request::post("/api/files?filename=a.pdf")
        .header("authorization", format!("Bearer {rep}"))
        .header("content-type", "application/pdf")
        .body(Body::from("%PDF-1.7"))
        .expect("request");
    let parameter = server.send(request).await.detail(StatusCode::BAD_REQUEST);
    assert!(parameter.contains("`filename` is not a parameter"), "{parameter}");
    // Over 50 MiB: said up front by the length, or found while streaming.
    let request = Request::post("/api/files")
        .header("authorization", format!("Bearer {rep}"))
        .header("content-type", "image/png")
        .header("content-length", (FIFTY_MIB + 1).to_string())
        .body(Body::from(png.clone()))
        .expect("request");
    let declared = server.send(request).await.problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(declared["type"], "urn:stagecraft:problem:body-too-large");
    let mut chunk = png.clone();
    chunk.resize(1024 * 1024, 7);
    let streamed = Body::from_stream(Repeated { chunk: Bytes::from(chunk), chunks: 51 });
    server
        .upload(&rep, "image/png", Some("big.png"), streamed)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing refused was kept, and nothing half-written was left behind.
    assert_eq!(stored_files(&server), Vec::<String>::new());
    // Exactly 50 MiB is fine.
    let mut chunk = png.clone();
    chunk.resize(1024 * 1024, 7);
    let streamed = Body::from_stream(Repeated { chunk: Bytes::from(chunk), chunks: 50 });
    let fits = server
        .upload(&rep, "image/png", Some("big.png"), streamed)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(fits.body["size"], FIFTY_MIB);
    assert_eq!(stored_files(&server), [fits.body["id"].as_str().expect("id").to_owned()]);
}

#[tokio::test]
async fn file_fields_take_files_the_caller_may_see_of_a_type_and_size_they_accept() {
    let server = Harness::new();
    let deal = server.deal("rep01").await;
    let id = deal["id"].as_str().expect("id").to_owned();
    let uri = record_uri(&deal);
    let rep = server.login("rep01").await;
    let survey = server.pdf(&rep, "调研表.pdf").await;
    let change = |fields: Value| json!({"version": server.version(&id), "fields": fields});
    let linked = server
        .patch(&uri, &rep, change(json!({"needs_survey": survey})))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(linked["fields"]["needs_survey"], survey);
    assert_eq!(server.indexed("opportunity", "needs_survey", &survey), [id.as_str()]);
    // Whoever sees the deal may download its survey; others may not.
    let manager = server.login("mgr-east").await;
    let download = format!("/api/files/{survey}");
    server.get(&download, &manager).await.expect(StatusCode::OK);
    let other = server.login("rep02").await;
    server.get(&download, &other).await.problem(StatusCode::NOT_FOUND);
    // Nor may they put it in their own deal: it reads as no file at all.
    let theirs = server.deal("rep02").await;
    let their_uri = record_uri(&theirs);
    let their_version =
        |server: &Harness| server.version(theirs["id"].as_str().unwrap_or_default());
    let stolen = server
        .patch(
            &their_uri,
            &other,
            json!({"version": their_version(&server), "fields": {"needs_survey": survey}}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    let made_up = "0123456789abcdef0123456789abcdef";
    let missing = server
        .patch(
            &their_uri,
            &other,
            json!({"version": their_version(&server), "fields": {"needs_survey": made_up}}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(stolen["errors"][0]["pointer"], "/needs_survey");
    assert_eq!(
        stolen["errors"][0]["message_en"].as_str().map(|m| m.replace(&survey, "")),
        missing["errors"][0]["message_en"].as_str().map(|m| m.replace(made_up, "")),
    );
    assert!(stolen["errors"][0]["message_zh"].as_str().is_some_and(|m| m.contains("找不到该文件")));
    // On creation too, together with the form's own problems.
    let customer = theirs["fields"]["customer"].clone();
    let created = server
        .post(
            "/api/records/opportunity",
            &other,
            json!({"fields": {"name": "x", "customer": customer, "needs_survey": survey}}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: Vec<&str> = created["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert_eq!(pointers, ["/needs_survey", "/amount", "/expected_close_date"], "{created:#}");
    // A file field holds an id, of a type the field accepts.
    let shaped = server
        .patch(&uri, &rep, change(json!({"needs_survey": {"name": "调研表.pdf"}})))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(shaped["errors"][0]["pointer"], "/needs_survey");
    assert!(
        shaped["errors"][0]["message_en"].as_str().is_some_and(|m| m.contains("POST /api/files"))
    );
    let notes = server
        .upload(&rep, "text/plain", Some("notes.txt"), "客户关心交期")
        .await
        .expect(StatusCode::CREATED)
        .body;
    let wrong_type = server
        .patch(&uri, &rep, change(json!({"needs_survey": notes["id"]})))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        wrong_type["errors"][0]["message_en"],
        "this field takes files of type application/pdf, \
         application/vnd.openxmlformats-officedocument.wordprocessingml.document, \
         application/vnd.openxmlformats-officedocument.spreadsheetml.sheet, image/*; \
         this one is text/plain"
    );
    // Clearing the field unlinks the file: the manager no longer finds it, the uploader
    // still does.
    server.patch(&uri, &rep, change(json!({"needs_survey": null}))).await.expect(StatusCode::OK);
    assert_eq!(server.indexed("opportunity", "needs_survey", &survey), Vec::<String>::new());
    server.get(&download, &manager).await.problem(StatusCode::NOT_FOUND);
    server.get(&download, &rep).await.expect(StatusCode::OK);
    // Once the manager may see it again (relinked), they may also put it in a record.
    server.patch(&uri, &rep, change(json!({"needs_survey": survey}))).await.expect(StatusCode::OK);
    server.get(&download, &manager).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn a_list_field_holds_several_files_each_checked() {
    let server = Harness::new();
    let deal = server.deal("rep01").await;
    let rep = server.login("rep01").await;
    let png = |size: usize| {
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        bytes.resize(size, 0);
        bytes
    };
    let mut photos = Vec::new();
    for number in 0..2 {
        let answer = server
            .upload(&rep, "image/png", Some(&format!("故障{number}.png")), png(64))
            .await
            .expect(StatusCode::CREATED);
        photos.push(answer.body["id"].as_str().expect("id").to_owned());
    }
    let mut fields = Map::new();
    fields.insert("customer".into(), deal["fields"]["customer"].clone());
    fields.insert("equipment".into(), json!("数控冲床 CP-200"));
    fields.insert("description".into(), json!("主轴异响"));
    fields.insert("urgency".into(), json!("high"));
    let with = |photos: Value| {
        let mut fields = fields.clone();
        fields.insert("photos".into(), photos);
        json!({"fields": fields})
    };
    let repair = server
        .post("/api/records/repair_request", &rep, with(json!(photos)))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let repair_id = repair["id"].as_str().expect("id").to_owned();
    for photo in &photos {
        assert_eq!(server.indexed("repair_request", "photos", photo), [repair_id.as_str()]);
    }
    let bad = server
        .post("/api/records/repair_request", &rep, with(json!([photos[0], "nope", 7])))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: Vec<&str> = bad["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert_eq!(pointers, ["/photos/1", "/photos/2"], "{bad:#}");
    let single = server
        .post("/api/records/repair_request", &rep, with(json!(photos[0])))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(single["errors"][0]["pointer"], "/photos");
    assert!(
        single["errors"][0]["message_en"].as_str().is_some_and(|m| m.contains("a list of ids"))
    );
    // Photos are at most 10MB each, though uploads may be larger.
    let big = server
        .upload(&rep, "image/png", Some("big.png"), png(10 * 1024 * 1024 + 1))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let too_big = server
        .post("/api/records/repair_request", &rep, with(json!([photos[0], big["id"]])))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_big["errors"][0]["pointer"], "/photos/1");
    assert_eq!(
        too_big["errors"][0]["message_en"],
        "the file is larger than this field's limit of 10MB"
    );
}

// ----- the OpenAPI document ---------------------------------------------------------------

/// Objects that list their properties allow no others: an answer may hold nothing the
/// document does not name.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// Checks an answer against the document's schema for its operation and status.
#[track_caller]
fn check(document: &Value, method: &str, path: &str, answer: &common::Answer) {
    let operation = &document["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not in the document");
    let response = &operation["responses"][answer.status.as_str()];
    assert!(response.is_object(), "{method} {path} does not document {}", answer.status);
    let content = response["content"].as_object().expect("a documented body");
    let (_, media) = content.iter().next().expect("a media type");
    let mut components = document["components"].clone();
    close_objects(&mut components);
    let mut schema = media["schema"].clone();
    close_objects(&mut schema);
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": components,
        "allOf": [schema],
    });
    let validator = jsonschema::validator_for(&root).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&answer.body)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{method} {path} {}: {errors:#?}\n{:#}", answer.status, answer.body);
}

#[tokio::test]
async fn the_answers_are_what_the_openapi_document_says() {
    let server = Harness::new();
    let document = server.call(Method::GET, "/api/openapi.json", None, None).await.body;
    for (method, path) in [
        ("get", "/api/records/{form}"),
        ("post", "/api/files"),
        ("get", "/api/files/{id}"),
        ("get", "/api/files/{id}/info"),
        ("get", "/api/forms"),
        ("get", "/api/forms/{form}"),
        ("get", "/api/flows"),
        ("get", "/api/flows/{flow}"),
        ("get", "/api/org/me"),
        ("get", "/api/org/users"),
        ("get", "/api/org/departments"),
    ] {
        assert!(document["paths"][path][method].is_object(), "{method} {path} is not documented");
    }
    let rep = server.login("rep01").await;
    let director = server.login("director").await;
    for (path, uri, token) in [
        ("/api/records/{form}", "/api/records/opportunity?limit=2", &director),
        ("/api/records/{form}", "/api/records/opportunity?colour=red", &director),
        ("/api/records/{form}", "/api/records/nothing", &director),
        ("/api/forms", "/api/forms", &rep),
        ("/api/forms/{form}", "/api/forms/opportunity", &rep),
        ("/api/forms/{form}", "/api/forms/repair_request", &rep),
        ("/api/forms/{form}", "/api/forms/nothing", &rep),
        ("/api/flows", "/api/flows", &rep),
        ("/api/flows/{flow}", "/api/flows/sales-pipeline", &rep),
        ("/api/flows/{flow}", "/api/flows/contract-approval", &rep),
        ("/api/flows/{flow}", "/api/flows/nothing", &rep),
        ("/api/org/me", "/api/org/me", &director),
        ("/api/org/users", "/api/org/users", &rep),
        ("/api/org/departments", "/api/org/departments", &rep),
    ] {
        check(&document, "get", path, &server.get(uri, token).await);
    }
    let created = server.upload(&rep, "application/pdf", Some("a.pdf"), "%PDF-1.7").await;
    check(&document, "post", "/api/files", &created);
    for refused in [
        server.upload(&rep, "text/html", None, "<p>").await,
        server.upload(&rep, "application/pdf", None, "").await,
    ] {
        check(&document, "post", "/api/files", &refused);
    }
    let id = created.body["id"].as_str().expect("id");
    check(
        &document,
        "get",
        "/api/files/{id}/info",
        &server.get(&format!("/api/files/{id}/info"), &rep).await,
    );
    let hidden = server.get(&format!("/api/files/{id}"), &director).await;
    check(&document, "get", "/api/files/{id}", &hidden);
    let download = server.get(&format!("/api/files/{id}"), &rep).await;
    assert_eq!(download.status, StatusCode::OK);
    assert!(
        document["paths"]["/api/files/{id}"]["get"]["responses"]["200"]["content"]
            .get("application/octet-stream")
            .is_some()
    );
}
