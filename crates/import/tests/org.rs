//! Importing the organisation: people and departments files merged into the demo
//! company's org file, names resolved, mistakes reported by file, row and column.

use std::path::Path;

use stagecraft_import::import_org;
use stagecraft_model::OrgFile;
use stagecraft_pack::{Definitions, SourceFile, YamlFile};

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn definitions() -> Definitions {
    let root = root();
    let paths =
        [root.join("flows"), root.join("schemas"), root.join("examples/demo/company.org.yaml")];
    match stagecraft_pack::load(&paths) {
        Ok((definitions, _)) => definitions,
        Err(report) => panic!("the shipped packs must load: {:#?}", report.diagnostics),
    }
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name))
        .expect("fixture")
}

#[test]
fn people_and_departments_merge_into_the_org_file() {
    let definitions = definitions();
    let current = definitions.org.clone();
    let result = import_org(
        &definitions,
        &current,
        Some(&data("people.csv")),
        Some(&data("departments.csv")),
    );
    assert!(result.problems.is_empty(), "{:#?}", result.problems);
    assert_eq!(result.added_people, ["rep13", "mgr-west"]);
    assert_eq!(result.changed_people, ["rep01"]);
    assert_eq!(result.added_departments, ["sales-west"]);
    // The file reads back as an org file, with names resolved to ids.
    let source = SourceFile::new("company.org.yaml", "company.org.yaml", result.yaml.clone());
    let read = YamlFile::parse(source).expect("yaml");
    let org: OrgFile = serde_json::from_value(read.value).expect("an org file");
    let west = org.departments.iter().find(|d| d.id.as_str() == "sales-west").expect("west");
    assert_eq!(west.parent.as_ref().map(|p| p.as_str()), Some("sales-regions"));
    assert_eq!(west.head.as_ref().map(|h| h.as_str()), Some("mgr-west"));
    let manager = org.users.iter().find(|u| u.id.as_str() == "mgr-west").expect("manager");
    assert_eq!(manager.manager.as_ref().map(|m| m.as_str()), Some("director"));
    let rep = org.users.iter().find(|u| u.id.as_str() == "rep01").expect("rep01");
    assert_eq!(rep.phone.as_deref(), Some("13900000001"));
    assert_eq!(rep.manager.as_ref().map(|m| m.as_str()), Some("mgr-east"), "kept");
    assert_eq!(org.users.len(), current.users.len() + 2);
}

#[test]
fn unknown_roles_people_departments_and_circles_are_reported() {
    let definitions = definitions();
    let people = "用户名,姓名,部门,上级,角色\n\
                  x1,甲,火星部,nobody,wizard\n\
                  director,王总,,rep01,\n";
    let result = import_org(&definitions, &definitions.org, Some(people.as_bytes()), None);
    let at =
        |column: &str| result.problems.iter().find(|p| p.problem.column.as_deref() == Some(column));
    assert_eq!(at("角色").map(|p| p.problem.row), Some(2), "{:#?}", result.problems);
    assert!(at("部门").is_some() && at("上级").is_some());
    assert!(
        result.problems.iter().any(|p| p.problem.message_en.contains("circle")),
        "director reports to rep01, who reports up to director: {:#?}",
        result.problems
    );
    assert!(result.yaml.is_empty(), "nothing to write");
}
