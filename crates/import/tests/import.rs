//! Importing the fixture files into an engine over a real store: mapping defaults
//! from Chinese headers, another system's stage names, per-row problems, all or
//! nothing, historical dates kept, and a 10,000-row file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use stagecraft_engine::{Engine, ManualClock};
use stagecraft_import::{ImportError, Mapping, Progress, Source, apply, dry_run, read_table};
use stagecraft_store::{Page, RecordId, SledStore, Store};

/// 2026-11-02 10:00 in China.
const NOW: i64 = 1_793_584_800_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name))
        .expect("fixture")
}

fn engine(dir: &Path) -> Engine {
    let root = root();
    let paths =
        [root.join("flows"), root.join("schemas"), root.join("examples/demo/company.org.yaml")];
    let definitions = match stagecraft_pack::load(&paths) {
        Ok((definitions, _)) => definitions,
        Err(report) => panic!("the shipped packs must load: {:#?}", report.diagnostics),
    };
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).expect("open the store"));
    Engine::new(store, definitions, Arc::new(ManualClock::new(NOW)), 7)
}

fn source() -> Source<'static> {
    Source { actor: Some("admin"), name: "test.csv" }
}

fn count(engine: &Engine, form: &str) -> usize {
    engine.store().records_of_form(form, Page::first(100_000)).expect("list").len()
}

fn customers(engine: &Engine) {
    let mapping = Mapping { form: "customer".into(), ..Mapping::default() };
    let applied = apply(engine, source(), &mapping, &data("customers.csv"), &Progress::default())
        .expect("the customers import");
    assert_eq!(applied.ids.len(), 3);
}

#[test]
fn headers_in_chinese_map_to_fields_by_label() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(dir.path());
    let table = read_table(&data("deals.csv")).expect("table");
    let mapping = Mapping::suggest(&engine.definitions(), "opportunity", &table.headers);
    assert_eq!(mapping.columns.get("name").map(String::as_str), Some("商机名称"));
    assert_eq!(mapping.columns.get("amount").map(String::as_str), Some("预计金额（元）"));
    assert_eq!(mapping.columns.get("customer").map(String::as_str), Some("客户"));
    assert_eq!(mapping.owner.as_deref(), Some("负责人"));
    assert_eq!(mapping.created.as_deref(), Some("创建日期"));
    assert_eq!(mapping.stage.as_deref(), Some("阶段"));
}

#[test]
fn customers_keep_their_own_creation_dates() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(dir.path());
    let mapping = Mapping { form: "customer".into(), ..Mapping::default() };
    let report = dry_run(&engine, source(), &mapping, &data("customers.csv"), &Progress::default());
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!((report.rows, report.valid_rows), (3, 3));
    assert_eq!(count(&engine, "customer"), 0, "a dry run writes nothing");
    let progress = Progress::default();
    let applied =
        apply(&engine, source(), &mapping, &data("customers.csv"), &progress).expect("the import");
    assert_eq!(progress.snapshot(), (3, 3, 3));
    let first = engine.record(&applied.ids[0]).expect("read").expect("exists");
    assert_eq!(first.owner.as_deref(), Some("rep01"), "owner found by name");
    assert_eq!(first.fields["industry"], "machinery", "enum by its Chinese label");
    assert_eq!(first.fields["level"], "a");
    assert_eq!(first.fields["tags"], serde_json::json!(["老客户", "展会线索"]));
    // 2024-03-05 00:00 in China.
    assert_eq!(first.created_at, 1_709_568_000_000);
    assert_eq!(first.last_activity_at, NOW, "the import counts as activity");
    let third = engine.record(&applied.ids[2]).expect("read").expect("exists");
    assert_eq!(third.owner.as_deref(), Some("rep01"), "owner found by e-mail");
    let events = engine.store().events_of(&RecordId::new(applied.ids[0].as_str())).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "imported");
    assert_eq!(events[0].data["created_at"], 1_709_568_000_000_i64);
    assert_eq!(events[0].data["source"], "test.csv");
    assert_eq!(events[0].data["ended"], Value::Null);
    assert!(engine.verify().expect("verify").is_clean());
}

#[test]
fn deals_from_another_system_land_in_the_mapped_stages() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(dir.path());
    customers(&engine);
    let text = String::from_utf8(data("deals.mapping.yaml")).expect("utf-8");
    let mapping = Mapping::parse("deals.mapping.yaml", &text).expect("mapping");
    let applied = apply(&engine, source(), &mapping, &data("deals.csv"), &Progress::default())
        .unwrap_or_else(|error| match error {
            ImportError::Problems(report) => panic!("{:#?}", report.problems),
            other => panic!("{other}"),
        });
    let won = engine.record(&applied.ids[0]).expect("read").expect("exists");
    let flow = won.flow.as_ref().expect("a flow");
    assert_eq!(flow.stage.as_str(), "won");
    assert_eq!(flow.outcome.as_ref().map(|o| o.as_str()), Some("won"));
    assert_eq!(won.fields["amount"], 1_280_000.0);
    assert!(won.fields["customer"].is_string(), "customer linked by name");
    let events = engine.store().events_of(&RecordId::new(applied.ids[0].as_str())).expect("events");
    assert_eq!(events[0].data["source"], "旧 CRM");
    // 2025-05-20 00:00 in China.
    assert_eq!(events[0].data["ended"]["outcome"], "won");
    assert_eq!(events[0].data["ended"]["at"], 1_747_670_400_000_i64);
    assert_eq!(events[0].data["stages"][0]["stage"], "won");
    let open = engine.record(&applied.ids[1]).expect("read").expect("exists");
    assert_eq!(open.stage().map(|s| s.as_str()), Some("negotiation"));
    assert_eq!(open.fields["amount"], 850_000.0, "85万");
    assert!(open.flow.as_ref().is_some_and(|flow| flow.outcome.is_none()));
    assert!(open.timers.is_empty() && open.tasks.is_empty(), "history starts no timers");
    let lost = engine.record(&applied.ids[2]).expect("read").expect("exists");
    assert_eq!(
        lost.flow.as_ref().and_then(|f| f.outcome.as_ref()).map(|o| o.as_str()),
        Some("lost")
    );
    let index = engine
        .store()
        .records_by_index(
            "opportunity",
            "stage",
            &stagecraft_store::IndexValue::from("negotiation"),
            Page::first(10),
        )
        .expect("index");
    assert_eq!(index.len(), 1, "indexed like any record");
    assert!(engine.verify().expect("verify").is_clean());
}

#[test]
fn one_bad_row_writes_nothing_and_every_problem_has_its_row_and_column() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(dir.path());
    customers(&engine);
    let csv = "商机名称,客户,预计金额（元）,预计成交日期,阶段,负责人\n\
               好商机,苏州精工机械有限公司,1000,2026-01-01,谈判中,rep01\n\
               坏金额,苏州精工机械有限公司,很多,2026-01-01,谈判中,rep01\n\
               \"多行\n名称\",不存在的公司,1000,明天,火星阶段,nobody\n\
               ,苏州精工机械有限公司,1000,2026-01-01,,rep01\n";
    let mapping = Mapping {
        form: "opportunity".into(),
        stage_names: [("谈判中".to_owned(), "negotiation".to_owned())].into(),
        ..Mapping::default()
    };
    let error = apply(&engine, source(), &mapping, csv.as_bytes(), &Progress::default())
        .expect_err("bad rows");
    let ImportError::Problems(report) = error else { panic!("{error}") };
    assert_eq!(count(&engine, "opportunity"), 0, "all or nothing");
    assert_eq!((report.rows, report.valid_rows), (4, 1));
    let at = |row: u64, column: &str| {
        report.problems.iter().find(|p| p.row == row && p.column.as_deref() == Some(column))
    };
    let amount = at(3, "预计金额（元）").expect("amount problem on line 3");
    assert_eq!(amount.value.as_deref(), Some("很多"));
    assert!(amount.message_zh.contains("不是数字"), "{}", amount.message_zh);
    // The quoted name spans lines 4 and 5: the row is numbered where it starts.
    assert!(at(4, "客户").is_some(), "{:#?}", report.problems);
    assert!(at(4, "预计成交日期").is_some());
    assert!(at(4, "阶段").is_some());
    assert!(at(4, "负责人").is_some());
    let missing = report.problems.iter().find(|p| p.row == 6).expect("line 6");
    assert_eq!(missing.field.as_deref(), Some("name"), "the form's validator names the field");
}

#[test]
fn a_mapping_naming_unknown_columns_or_stages_is_refused_at_the_header() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(dir.path());
    let mapping = Mapping {
        form: "opportunity".into(),
        columns: [("name".to_owned(), "Deal".to_owned())].into(),
        stage_names: [("Closing".to_owned(), "closing".to_owned())].into(),
        ..Mapping::default()
    };
    let report = dry_run(&engine, source(), &mapping, &data("deals.csv"), &Progress::default());
    assert!(report.problems.iter().all(|problem| problem.row == 1), "{:#?}", report.problems);
    assert!(report.problems.iter().any(|p| p.column.as_deref() == Some("Deal")));
    assert!(report.problems.iter().any(|p| p.value.as_deref() == Some("closing")));
    assert_eq!(report.valid_rows, 0);
}

#[test]
fn ten_thousand_rows_import_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(dir.path());
    let mut csv = String::from("客户名称,统一社会信用代码,所属区域,负责人,创建日期\n");
    for row in 0..10_000 {
        csv.push_str(&format!(
            "测试客户{row:05}有限公司,91320500MA{row:08},华东,rep{:02},2024-{:02}-{:02}\n",
            row % 12 + 1,
            row % 12 + 1,
            row % 28 + 1
        ));
    }
    let mapping = Mapping { form: "customer".into(), ..Mapping::default() };
    let started = std::time::Instant::now();
    let applied = apply(&engine, source(), &mapping, csv.as_bytes(), &Progress::default())
        .unwrap_or_else(|error| match error {
            ImportError::Problems(report) => panic!("{:#?}", &report.problems[..3]),
            other => panic!("{other}"),
        });
    eprintln!("10,000 customers imported in {:?}", started.elapsed());
    assert_eq!(applied.ids.len(), 10_000);
    assert_eq!(count(&engine, "customer"), 10_000);
}

#[test]
fn a_row_may_link_to_an_earlier_row_of_the_same_file() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(dir.path());
    let csv = "客户名称,上级公司\n\
               精工控股集团,\n\
               精工南京分公司,精工控股集团\n\
               精工无锡分公司,精工控股集团\n\
               孤儿公司,不存在的集团\n";
    let mapping = Mapping { form: "customer".into(), ..Mapping::default() };
    let report = dry_run(&engine, source(), &mapping, csv.as_bytes(), &Progress::default());
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert_eq!(
        (report.problems[0].row, report.problems[0].column.as_deref()),
        (5, Some("上级公司"))
    );
    let good: String = csv.lines().take(4).map(|line| format!("{line}\n")).collect();
    let applied = apply(&engine, source(), &mapping, good.as_bytes(), &Progress::default())
        .unwrap_or_else(|error| panic!("{error}"));
    let branch = engine.record(&applied.ids[1]).expect("read").expect("exists");
    assert_eq!(branch.owner, None, "customers without an owner go to the pool");
    assert_eq!(branch.fields["parent"], serde_json::json!(applied.ids[0]));
    let index = engine
        .store()
        .records_by_index(
            "customer",
            "parent",
            &stagecraft_store::IndexValue::from(applied.ids[0].as_str()),
            Page::first(10),
        )
        .expect("index");
    assert_eq!(index.len(), 2, "both branches are indexed under their parent");
}
