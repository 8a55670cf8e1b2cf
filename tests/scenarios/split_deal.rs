//! R19: several similar deals for one customer in a short window, each under the
//! approval threshold (¥500,000), are flagged for the sales director's risk review.

use serde_json::{Value, json};

use crate::harness::World;
use crate::pipeline::MONDAY;

fn deal(world: &World, customer: &Value, name: &str, amount: i64) -> Value {
    world.create(
        "rep01",
        "opportunity",
        json!({"name": name, "customer": customer["id"], "amount": amount, "expected_close_date": "2027-02-28"}),
    )
}

#[test]
fn a_third_small_deal_for_one_customer_within_two_weeks_is_flagged() {
    let world = World::at(MONDAY);
    let customer = world.create("rep01", "customer", json!({"name": "嘉兴宏达塑料制品有限公司"}));
    let first = deal(&world, &customer, "一号线机械手", 450_000);
    world.pass("3d");
    let second = deal(&world, &customer, "二号线机械手", 480_000);
    assert!(world.notified(&second, "split_deal").is_empty(), "two deals are not a pattern");
    world.pass("5d");
    let third = deal(&world, &customer, "三号线机械手", 490_000);
    let flagged = world.notified(&third, "split_deal");
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(flagged[0].to, ["director"]);
    let reviews = world.tasks_about("director", &third);
    assert!(reviews.iter().any(|t| t["data"]["form"] == "risk_review"), "{reviews:#?}");
    assert!(world.notified(&first, "split_deal").is_empty());
}

#[test]
fn large_deals_and_old_deals_do_not_count() {
    let world = World::at(MONDAY);
    let customer = world.create("rep01", "customer", json!({"name": "湖州金源五金有限公司"}));
    deal(&world, &customer, "旧项目", 300_000);
    world.pass("15d");
    deal(&world, &customer, "大项目", 2_000_000);
    let third = deal(&world, &customer, "小项目", 300_000);
    assert!(world.notified(&third, "split_deal").is_empty(), "one deal is too old, one too large");
}
