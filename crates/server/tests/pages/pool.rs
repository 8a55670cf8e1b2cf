//! The `pool` page: the customers nobody owns, claiming one, and releasing it.

use super::*;

/// The `action` of the first form on the page whose action starts with `prefix`.
fn first_action(html: &str, prefix: &str) -> Option<String> {
    let marker = format!("action=\"{prefix}");
    let start = html.find(&marker)? + "action=\"".len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

#[tokio::test]
async fn a_rep_claims_a_customer_from_the_pool_and_releases_it() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep03").await;
    let pool = harness.get("/pool", Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(pool.body.contains("客户池"), "{}", pool.body);
    assert!(pool.body.contains("远航纺机") || pool.body.contains("无锡远航纺织机械有限公司"));
    assert!(pool.body.contains("已负责 0 / 200"), "the counter: {}", pool.body);
    assert!(pool.body.contains("您还没有负责的记录"));
    let claim = first_action(&pool.body, "/pool/customer/").expect("a claim button");
    assert!(claim.ends_with("/claim"), "{claim}");
    let id = claim.trim_start_matches("/pool/customer/").trim_end_matches("/claim").to_owned();

    // Without the token nothing happens.
    harness.post(&claim, Some(&rep.cookie), &[]).await.page(StatusCode::FORBIDDEN);

    let answer = harness
        .post(&claim, Some(&rep.cookie), &[("_csrf", &pool.csrf())])
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(answer.header("location"), "/pool?done=claimed");
    let after = harness.get("/pool?done=claimed", Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(after.body.contains("认领成功"), "{}", after.body);
    assert!(after.body.contains(&format!("id=\"mine-item-{id}\"")), "{}", after.body);
    assert!(!after.body.contains(&format!("id=\"pool-item-{id}\"")));
    assert!(after.body.contains("已负责 1 / 200"));
    assert!(after.body.contains("如无跟进，将于以下时间退回"));
    let record = harness.state.engine().record(&id).expect("read").expect("the customer");
    assert_eq!(record.owner.as_deref(), Some("rep03"));

    // Claiming it again says why not.
    let again = harness
        .post(&claim, Some(&rep.cookie), &[("_csrf", &after.csrf())])
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(again.header("location"), "/pool?refused=mine");

    let release = format!("/pool/customer/{id}/release");
    let released = harness
        .post(&release, Some(&rep.cookie), &[("_csrf", &after.csrf())])
        .await
        .expect(StatusCode::SEE_OTHER);
    assert_eq!(released.header("location"), "/pool?done=released");
    let record = harness.state.engine().record(&id).expect("read").expect("the customer");
    assert_eq!(record.owner, None);
}

#[tokio::test]
async fn the_pool_page_speaks_english_and_another_rep_cannot_release() {
    let harness = Harness::new();
    let rep = harness.sign_in("rep03").await;
    let pool = harness.get("/pool?lang=en", Some(&rep.cookie)).await.page(StatusCode::OK);
    assert!(pool.body.contains("Customer pool") && pool.body.contains(">Claim<"), "{}", pool.body);
    let claim = first_action(&pool.body, "/pool/customer/").expect("a claim button");
    harness
        .post(&claim, Some(&rep.cookie), &[("_csrf", &pool.csrf())])
        .await
        .expect(StatusCode::SEE_OTHER);
    let release = claim.replace("/claim", "/release");
    let other = harness.sign_in("rep05").await;
    let csrf = harness.csrf(&other).await;
    harness
        .post(&release, Some(&other.cookie), &[("_csrf", &csrf)])
        .await
        .page(StatusCode::NOT_FOUND);
}
