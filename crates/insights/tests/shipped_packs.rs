//! The shipped packs and the demo company declare what the dashboard measures.

use std::path::PathBuf;

use stagecraft_model::Id;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_shipped_flows_and_the_demo_targets_load() {
    let paths =
        ["flows/base", "flows/sales", "flows/after-sales", "examples/demo/company.org.yaml"]
            .map(|path| repo().join(path));
    let definitions = match stagecraft_pack::load(&paths) {
        Ok((definitions, _)) => definitions,
        Err(report) => {
            let messages: Vec<String> =
                report.diagnostics.iter().map(|d| format!("{}: {}", d.code, d.message)).collect();
            panic!("the shipped packs do not load: {messages:#?}")
        }
    };
    let pipeline = definitions.flows.get(&Id::from("sales-pipeline")).expect("pipeline");
    let measures = pipeline.measures.as_ref().expect("pipeline measures");
    assert!(measures.amount.is_some() && measures.large_amount.is_some());
    assert!(!measures.conversions.is_empty());
    for flow in ["contract-approval", "repair"] {
        let flow = definitions.flows.get(&Id::from(flow)).expect("flow");
        assert!(flow.measures.as_ref().is_some_and(|m| m.cycle_time), "{}", flow.id);
    }
    assert!(definitions.org.targets.len() >= 12, "every rep has targets");
}
