//! The delivery worker against real protocols: a real SMTP server (aiosmtpd) and
//! real HTTP receivers on 127.0.0.1, on the shipped packs and the demo company, with
//! a manual clock. A stalled deal reaches its owner and manager by e-mail and WeCom
//! with a link back to the deal; every chat channel gets its documented shape and
//! signature; a receiver that keeps failing puts the delivery on the dead-letter
//! list, and a retry delivers it with the same id.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use stagecraft_engine::{Engine, ManualClock, Target};
use stagecraft_model::Id;
use stagecraft_notify::config::{EmailConfig, RobotConfig, WebhookConfig};
use stagecraft_notify::{Notifier, NotifyConfig, RetryPolicy, Secret, State, delivery, inbox};
use stagecraft_runtime::Command;
use stagecraft_store::{Commit, SledStore, Store};
use support::{Receiver, SmtpServer, mail_headers};

/// 2026-11-02 (Monday) 10:00 in China.
const MONDAY_10AM: i64 = 1_793_584_800_000;
const DAY: i64 = 86_400_000;
const PUBLIC_URL: &str = "https://crm.example.com";

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn engine(dir: &Path, clock: Arc<ManualClock>) -> Arc<Engine> {
    let root = repo();
    let paths =
        [root.join("flows"), root.join("schemas"), root.join("examples/demo/company.org.yaml")];
    let definitions = match stagecraft_pack::load(&paths) {
        Ok((definitions, _)) => definitions,
        Err(report) => panic!("the shipped packs must load: {:#?}", report.diagnostics),
    };
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.join("data")).expect("store"));
    let engine = Arc::new(Engine::new(store, definitions, clock, 7));
    // The demo company's org file is part of the definitions.
    engine.reload_from(&paths).expect("reload");
    engine
}

fn deal(engine: &Engine, name: &str) -> String {
    let fields: Map<String, Value> = json!({
        "name": name, "customer": "c-1", "amount": 480000, "expected_close_date": "2026-12-31",
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    engine
        .execute(
            Some("rep01"),
            Target::New,
            Command::Create { form: Id::from("opportunity"), fields, owner: None },
            None,
        )
        .expect("a deal")
        .record
        .id
}

/// Rounds until nothing is left to do now.
async fn deliver(notifier: &Notifier) {
    for _ in 0..20 {
        let round = notifier.round().await.expect("round");
        if round.planned + round.sent + round.retried + round.dead == 0 {
            return;
        }
    }
}

fn config() -> NotifyConfig {
    NotifyConfig { public_url: PUBLIC_URL.to_owned(), ..NotifyConfig::default() }
}

/// The text of every base64 part of a mail, decoded.
fn mail_text(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    let mut text = String::new();
    for part in raw.split("\n--") {
        let Some((head, body)) = part.split_once("\n\n") else { continue };
        if !head.to_ascii_lowercase().contains("content-transfer-encoding: base64") {
            continue;
        }
        let encoded: String = body.lines().take_while(|l| !l.starts_with("--")).collect();
        if let Ok(bytes) = BASE64.decode(encoded.trim()) {
            text.push_str(&String::from_utf8_lossy(&bytes));
            text.push('\n');
        }
    }
    text
}

/// An RFC 2047 subject (`=?utf-8?b?…?=` words), decoded.
fn decode_subject(subject: &str) -> String {
    subject
        .split_whitespace()
        .map(|word| {
            let lower = word.to_ascii_lowercase();
            match lower.strip_prefix("=?utf-8?b?").and_then(|rest| rest.strip_suffix("?=")) {
                Some(_) => {
                    let encoded = &word["=?utf-8?b?".len()..word.len() - 2];
                    String::from_utf8_lossy(&BASE64.decode(encoded).unwrap_or_default())
                        .into_owned()
                }
                None => word.to_owned(),
            }
        })
        .collect()
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_deal_reaches_owner_and_manager_by_email_and_wecom_with_a_link_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let smtp = SmtpServer::start(dir.path());
    let wecom = Receiver::answering(200, r#"{"errcode":0,"errmsg":"ok"}"#);
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let engine = engine(dir.path(), clock.clone());
    let deal_id = deal(&engine, "注塑机两台 <华东>");
    let mut config = config();
    config.email = Some(EmailConfig {
        url: Secret::new(smtp.url()),
        from: "Stagecraft <crm@example.com>".into(),
    });
    config.wecom = Some(RobotConfig {
        url: Secret::new(wecom.url("/cgi-bin/webhook/send?key=k1")),
        secret: None,
    });
    let notifier = Notifier::new(engine.clone(), config).expect("notifier");

    // The first scan only starts the schedule; eight days later, at the 09:00 tick,
    // the deal has been in its stage for more than seven.
    engine.run_scheduled_scans().expect("scan");
    clock.advance(8 * DAY);
    engine.run_scheduled_scans().expect("scan");
    deliver(&notifier).await;

    let mails = smtp.wait_for(2, Duration::from_secs(10));
    assert_eq!(mails.len(), 2, "one e-mail each to the owner and the manager");
    let link = format!("{PUBLIC_URL}/ui/records/opportunity/{deal_id}");
    let mut to: Vec<String> = Vec::new();
    for mail in &mails {
        let headers = mail_headers(mail);
        to.push(headers["to"].clone());
        let subject = decode_subject(&headers["subject"]);
        assert!(subject.contains("商机停滞提醒"), "{subject}");
        let body = mail_text(mail);
        assert!(body.contains(&link), "the mail links to the deal:\n{body}");
        // The HTML part escapes what people typed; the text part keeps it.
        assert!(body.contains("注塑机两台 &lt;华东&gt;"), "{body}");
        assert!(body.contains(&format!("<a href=\"{link}\">")), "{body}");
        let id = headers["x-stagecraft-notification-id"].clone();
        assert_eq!(headers["message-id"], format!("<{id}@crm.example.com>"));
        assert!(id.ends_with(".email.rep01") || id.ends_with(".email.mgr-east"), "{id}");
    }
    to.sort();
    assert!(
        to[0].contains("mgr-east@example.com") && to[1].contains("rep01@example.com"),
        "{to:?}"
    );

    let posts = wecom.wait_for(1, Duration::from_secs(10));
    assert_eq!(posts.len(), 1, "one group message");
    let body = posts[0].json();
    assert_eq!(posts[0].target, "/cgi-bin/webhook/send?key=k1");
    assert_eq!(body["msgtype"], "text");
    // rep01 and mgr-east, by the phone numbers in the demo org.
    assert_eq!(body["text"]["mentioned_mobile_list"], json!(["13800138008", "13800138007"]));
    let content = body["text"]["content"].as_str().expect("content");
    assert!(content.contains(&link) && content.contains("注塑机两台 <华东>"), "{content}");

    // The inbox has it too, once per person, unread until read.
    let store = engine.store().as_ref();
    let page = inbox::list(store, "rep01", None, 50).expect("inbox");
    assert_eq!(page.unread, 1);
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].record_url.as_deref(), Some(link.as_str()));
    inbox::mark_read(store, "rep01", page.items[0].id, engine.now()).expect("read");
    assert_eq!(inbox::unread_count(store, "rep01").expect("count"), 0);
    assert_eq!(inbox::unread_count(store, "mgr-east").expect("count"), 1);

    // Nothing is sent twice.
    deliver(&notifier).await;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(wecom.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dingtalk_feishu_and_webhooks_get_their_documented_shape_and_signature() {
    let dir = tempfile::tempdir().expect("temp dir");
    let receiver = Receiver::start(Arc::new(|_| {
        (200, r#"{"errcode":0,"code":0,"msg":"success"}"#.to_owned())
    }));
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let engine = engine(dir.path(), clock.clone());
    let deal_id = deal(&engine, "数控机床");
    let mut config = config();
    config.dingtalk = Some(RobotConfig {
        url: Secret::new(receiver.url("/robot/send?access_token=t1")),
        secret: Some(Secret::new("SEC-ding")),
    });
    config.feishu = Some(RobotConfig {
        url: Secret::new(receiver.url("/open-apis/bot/v2/hook/h1")),
        secret: Some(Secret::new("feishu-secret")),
    });
    let webhook_key = b"a webhook key of 32 bytes or so!";
    config.webhook = Some(WebhookConfig {
        url: Secret::new(receiver.url("/hooks/stagecraft")),
        secret: Secret::new(format!("whsec_{}", BASE64.encode(webhook_key))),
    });
    let notifier = Notifier::new(engine.clone(), config).expect("notifier");
    let mut commit = Commit::at(engine.now());
    commit.outbox.push(json!({
        "record": deal_id, "to": ["rep01", "mgr-east"], "template": "stalled_deal",
        "channels": ["dingtalk", "feishu", "webhook"], "cause": "stalled-deal", "at": engine.now(),
    }));
    let outbox = engine.store().commit(commit).expect("commit").outbox[0].0;
    deliver(&notifier).await;
    let received = receiver.wait_for(3, Duration::from_secs(10));
    assert_eq!(received.len(), 3);
    let by_path = |prefix: &str| {
        received
            .iter()
            .find(|r| r.target.starts_with(prefix))
            .cloned()
            .unwrap_or_else(|| panic!("{prefix}"))
    };

    let ding = by_path("/robot/send");
    let timestamp = ding.query("timestamp").expect("timestamp");
    let sign = percent_encoding::percent_decode_str(&ding.query("sign").expect("sign"))
        .decode_utf8_lossy()
        .into_owned();
    let expected = BASE64.encode(hmac(b"SEC-ding", format!("{timestamp}\nSEC-ding").as_bytes()));
    assert_eq!(sign, expected, "DingTalk signature");
    let body = ding.json();
    assert_eq!(body["msgtype"], "text");
    assert_eq!(body["at"]["atMobiles"], json!(["13800138008", "13800138007"]));
    assert!(body["text"]["content"].as_str().is_some_and(|c| c.contains("@13800138008")), "{body}");

    let feishu = by_path("/open-apis/bot/v2/hook/h1").json();
    let ts = feishu["timestamp"].as_str().expect("timestamp (text)");
    let expected = BASE64.encode(hmac(format!("{ts}\nfeishu-secret").as_bytes(), b""));
    assert_eq!(feishu["sign"], json!(expected), "Feishu signature");
    assert_eq!(feishu["msg_type"], "text");
    assert!(feishu["content"]["text"].as_str().is_some_and(|t| t.contains("数控机床")), "{feishu}");

    let hook = by_path("/hooks/stagecraft");
    let id = &hook.headers["webhook-id"];
    assert_eq!(id, &format!("{outbox}.webhook.endpoint"));
    let ts = &hook.headers["webhook-timestamp"];
    let signed = format!("{id}.{ts}.{}", hook.body);
    let expected = format!("v1,{}", BASE64.encode(hmac(webhook_key, signed.as_bytes())));
    assert_eq!(hook.headers["webhook-signature"], expected, "Standard Webhooks signature");
    let payload = hook.json();
    assert_eq!(payload["type"], "notification.created");
    assert_eq!(payload["data"]["record"], json!(deal_id));
    assert_eq!(payload["data"]["to"][0]["email"], "rep01@example.com");
    // A tampered body does not verify.
    let tampered = format!("{id}.{ts}.{}", hook.body.replace("数控机床", "数控车床"));
    assert_ne!(format!("v1,{}", BASE64.encode(hmac(webhook_key, tampered.as_bytes()))), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_keeps_failing_dead_letters_the_delivery_and_a_retry_delivers_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 503 three times, then 200.
    let receiver = Receiver::start(Arc::new(|n| {
        if n < 3 { (503, "busy".to_owned()) } else { (200, "{}".to_owned()) }
    }));
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let engine = engine(dir.path(), clock.clone());
    let mut config = config();
    config.webhook =
        Some(WebhookConfig { url: Secret::new(receiver.url("/hook")), secret: Secret::new("k") });
    config.retry = RetryPolicy {
        attempts: 3,
        first_delay_ms: 60_000,
        max_delay_ms: 600_000,
        timeout_ms: 5_000,
    };
    let notifier = Notifier::new(engine.clone(), config).expect("notifier");
    let mut commit = Commit::at(engine.now());
    commit.outbox.push(json!({
        "record": null, "to": ["admin"], "template": "weekly_digest", "channels": ["webhook"],
        "cause": "report:weekly-digest", "at": engine.now(),
    }));
    engine.store().commit(commit).expect("commit");
    let store = engine.store().as_ref();

    deliver(&notifier).await;
    assert_eq!(receiver.received().len(), 1);
    // Not before the backoff: a minute doubled per failure, with jitter in its upper half.
    clock.advance(29_000);
    deliver(&notifier).await;
    assert_eq!(receiver.received().len(), 1, "no attempt before the backoff");
    clock.advance(31_000);
    deliver(&notifier).await;
    assert_eq!(receiver.received().len(), 2);
    assert!(delivery::dead_letters(store, 10).expect("dead").is_empty());
    clock.advance(120_000);
    deliver(&notifier).await;
    assert_eq!(receiver.received().len(), 3);

    let dead = delivery::dead_letters(store, 10).expect("dead");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].last_error.as_deref().is_some_and(|e| e.contains("503")), "{dead:?}");
    clock.advance(3_600_000);
    deliver(&notifier).await;
    assert_eq!(receiver.received().len(), 3, "a dead delivery is not tried again by itself");

    let retried = delivery::retry(store, &dead[0].id, engine.now()).expect("retry");
    assert_eq!(retried.state, State::Pending);
    deliver(&notifier).await;
    let received = receiver.received();
    assert_eq!(received.len(), 4);
    assert!(delivery::dead_letters(store, 10).expect("dead").is_empty());
    let ids: Vec<&String> = received.iter().map(|r| &r.headers["webhook-id"]).collect();
    assert!(ids.iter().all(|id| *id == &dead[0].id), "one id for every attempt: {ids:?}");
    assert!(matches!(
        delivery::retry(store, &dead[0].id, engine.now()),
        Err(stagecraft_notify::RetryError::NotDead(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_digest_is_an_html_email_with_figures_and_preferences_are_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let smtp = SmtpServer::start(dir.path());
    let clock = Arc::new(ManualClock::new(MONDAY_10AM));
    let engine = engine(dir.path(), clock.clone());
    deal(&engine, "大额设备采购");
    let mut config = config();
    config.email =
        Some(EmailConfig { url: Secret::new(smtp.url()), from: "CRM <crm@example.com>".into() });
    let notifier = Notifier::new(engine.clone(), config).expect("notifier");
    let store = engine.store().as_ref();
    // The director wants no e-mail before 08:00 (and it is 09:00 when the digest comes).
    let quiet = inbox::QuietHours { from: "22:00".into(), to: "08:00".into() };
    inbox::set_preferences(
        store,
        "director",
        &inbox::Preferences { off: vec![], quiet_hours: Some(quiet) },
        engine.now(),
    )
    .expect("preferences");

    deliver(&notifier).await; // starts the report schedule
    clock.advance(7 * DAY); // next Monday 10:00: the 09:00 tick has passed
    deliver(&notifier).await;
    let mails = smtp.wait_for(1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1, "the digest goes to the sales director");
    let headers = mail_headers(&mails[0]);
    assert!(headers["to"].contains("director@example.com"), "{headers:?}");
    assert!(decode_subject(&headers["subject"]).contains("销售周报"));
    let body = mail_text(&mails[0]);
    assert!(body.contains("<table"), "figures as a table:\n{body}");
    assert!(body.contains("本期新增金额最大的记录") && body.contains("大额设备采购"), "{body}");
    // Once per tick, also when rounds run again.
    deliver(&notifier).await;
    assert_eq!(inbox::list(store, "director", None, 50).expect("inbox").items.len(), 1);
    assert_eq!(smtp.messages().len(), 1);
}
