//! Sending one delivery over its channel, in each receiver's documented format:
//! e-mail over SMTP (lettre), 企业微信 group robots, 钉钉 robots (signed), 飞书 bots
//! (signed) and generic webhooks signed the Standard Webhooks way.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};
use sha2::Sha256;
use stagecraft_model::Channel;

use crate::config::{NotifyConfig, RobotConfig, WebhookConfig};
use crate::delivery::{Delivery, Payload};

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again (timeouts, 5xx, 429, a busy mail server).
    Transient(String),
    /// Will fail the same way again (a refused address, 4xx): dead-lettered at once.
    Permanent(String),
}

impl SendError {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            SendError::Transient(message) | SendError::Permanent(message) => message,
        }
    }
}

/// The connections the channels use, built once from the settings.
#[derive(Clone, Debug)]
pub struct Channels {
    config: std::sync::Arc<NotifyConfig>,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    http: reqwest::Client,
    message_id_domain: String,
}

impl Channels {
    /// Builds the SMTP transport and the HTTP client.
    pub fn new(config: std::sync::Arc<NotifyConfig>) -> Result<Channels, String> {
        let timeout = Duration::from_millis(config.retry.timeout_ms.max(1) as u64);
        let smtp = match &config.email {
            Some(email) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(email.url.expose())
                    .map_err(|error| format!("e-mail: the SMTP URL is not valid: {error}"))?
                    .timeout(Some(timeout))
                    .build(),
            ),
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("stagecraft/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        let message_id_domain = config
            .public_url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .filter(|host| !host.is_empty())
            .unwrap_or("stagecraft.local")
            .to_owned();
        Ok(Channels { config, smtp, http, message_id_domain })
    }

    /// Sends one delivery, at `now_ms` (for signatures).
    pub async fn send(&self, delivery: &Delivery, now_ms: i64) -> Result<(), SendError> {
        match (&delivery.channel, &delivery.payload) {
            (Channel::Email, Payload::Email { to, name, subject, text, html }) => {
                self.send_email(&delivery.id, to, name, subject, text, html).await
            }
            (Channel::Wecom, Payload::Chat { text, mobiles, .. }) => {
                let robot = self.robot(&self.config.wecom, "WeCom")?;
                let body = wecom_body(text, mobiles);
                self.post_robot(robot.url.expose(), &body, "errcode").await
            }
            (Channel::Dingtalk, Payload::Chat { text, mobiles, .. }) => {
                let robot = self.robot(&self.config.dingtalk, "DingTalk")?;
                let url = match &robot.secret {
                    Some(secret) => {
                        dingtalk_signed_url(robot.url.expose(), secret.expose(), now_ms)
                    }
                    None => robot.url.expose().to_owned(),
                };
                self.post_robot(&url, &dingtalk_body(text, mobiles), "errcode").await
            }
            (Channel::Feishu, Payload::Chat { text, names, .. }) => {
                let robot = self.robot(&self.config.feishu, "Feishu")?;
                let secret = robot.secret.as_ref().map(|s| s.expose());
                let body = feishu_body(text, names, secret, now_ms.div_euclid(1000));
                self.post_robot(robot.url.expose(), &body, "code").await
            }
            (Channel::Webhook, Payload::Webhook { body }) => {
                let Some(webhook) = &self.config.webhook else {
                    return Err(SendError::Transient("the webhook is not configured".into()));
                };
                self.send_webhook(webhook, &delivery.id, body, now_ms).await
            }
            (channel, _) => Err(SendError::Permanent(format!(
                "nothing to send over {}",
                serde_json::to_string(channel).unwrap_or_default()
            ))),
        }
    }

    fn robot<'a>(
        &self,
        robot: &'a Option<RobotConfig>,
        name: &str,
    ) -> Result<&'a RobotConfig, SendError> {
        // Settings are read at start; a robot removed since then waits for a restart
        // that brings it back, or for an admin.
        robot.as_ref().ok_or_else(|| SendError::Transient(format!("{name} is not configured")))
    }

    async fn send_email(
        &self,
        id: &str,
        to: &str,
        name: &str,
        subject: &str,
        text: &str,
        html: &str,
    ) -> Result<(), SendError> {
        let Some(smtp) = &self.smtp else {
            return Err(SendError::Transient("e-mail is not configured".into()));
        };
        let from: Mailbox = self
            .config
            .email
            .as_ref()
            .map(|email| email.from.as_str())
            .unwrap_or_default()
            .parse()
            .map_err(|error| {
                SendError::Permanent(format!("the sender address is not valid: {error}"))
            })?;
        let address = to.parse().map_err(|error| {
            SendError::Permanent(format!("`{to}` is not an e-mail address: {error}"))
        })?;
        let to = Mailbox::new(Some(name.to_owned()), address);
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            // A stable Message-ID: a repeat after a crash is recognisably the same mail.
            .message_id(Some(format!("<{id}@{}>", self.message_id_domain)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Stagecraft-Notification-Id"),
                id.to_owned(),
            ))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text.to_owned()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .header(ContentTransferEncoding::Base64)
                            .body(html.to_owned()),
                    ),
            )
            .map_err(|error| SendError::Permanent(format!("cannot build the e-mail: {error}")))?;
        match smtp.send(message).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => {
                Err(SendError::Permanent(format!("the mail server refused it: {error}")))
            }
            Err(error) => Err(SendError::Transient(format!("SMTP: {error}"))),
        }
    }

    /// POSTs a robot message and reads its JSON answer: `errcode`/`code` 0 is success.
    async fn post_robot(&self, url: &str, body: &Value, code_key: &str) -> Result<(), SendError> {
        let answer = self
            .http
            .post(url)
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .map_err(|error| SendError::Transient(describe_http_error(error)))?;
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        check_status(status.as_u16(), &text)?;
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match reply.get(code_key).and_then(Value::as_i64) {
            Some(0) | None if reply.is_object() => Ok(()),
            Some(code) => Err(SendError::Transient(format!(
                "the robot answered {code_key} {code}: {}",
                reply
                    .get("errmsg")
                    .or_else(|| reply.get("msg"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ))),
            None => {
                Err(SendError::Transient(format!("the robot answered no JSON: {}", clip(&text))))
            }
        }
    }

    async fn send_webhook(
        &self,
        webhook: &WebhookConfig,
        id: &str,
        data: &Value,
        now_ms: i64,
    ) -> Result<(), SendError> {
        let timestamp = now_ms.div_euclid(1000);
        let body = json!({
            "type": "notification.created",
            "timestamp": chrono::DateTime::from_timestamp(timestamp, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
            "data": data,
        })
        .to_string();
        let signature = webhook_signature(webhook.secret.expose(), id, timestamp, &body);
        let answer = self
            .http
            .post(webhook.url.expose())
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|error| SendError::Transient(describe_http_error(error)))?;
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        check_status(status, &text)
    }
}

fn describe_http_error(error: reqwest::Error) -> String {
    // Without the URL: robot keys are part of it.
    let error = error.without_url();
    if error.is_timeout() {
        "the receiver did not answer in time".to_owned()
    } else if error.is_connect() {
        "cannot connect to the receiver".to_owned()
    } else {
        format!("HTTP: {error}")
    }
}

/// 2xx is success; 408, 429 and 5xx are worth retrying; other answers are final.
fn check_status(status: u16, body: &str) -> Result<(), SendError> {
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => {
            Err(SendError::Transient(format!("the receiver answered {status}: {}", clip(body))))
        }
        _ => Err(SendError::Permanent(format!("the receiver answered {status}: {}", clip(body)))),
    }
}

fn clip(text: &str) -> String {
    let clipped: String = text.chars().take(200).collect();
    clipped.trim().to_owned()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// The Standard Webhooks signature header value: `v1,<base64 HMAC-SHA256>` over
/// `<id>.<timestamp>.<body>`, keyed by the secret (`whsec_<base64>` or raw text).
pub fn webhook_signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => BASE64.decode(encoded).unwrap_or_else(|_| secret.as_bytes().to_vec()),
        None => secret.as_bytes().to_vec(),
    };
    let signed = format!("{id}.{timestamp}.{body}");
    format!("v1,{}", BASE64.encode(hmac_sha256(&key, signed.as_bytes())))
}

/// A WeCom group robot text message, mentioning people by mobile number.
pub fn wecom_body(text: &str, mobiles: &[String]) -> Value {
    json!({
        "msgtype": "text",
        "text": {"content": text, "mentioned_mobile_list": mobiles},
    })
}

/// A DingTalk robot text message; the people mentioned by number are also named
/// with `@<number>` in the text, which DingTalk requires to highlight them.
pub fn dingtalk_body(text: &str, mobiles: &[String]) -> Value {
    let mut content = text.to_owned();
    if !mobiles.is_empty() {
        content.push('\n');
        content.push_str(&mobiles.iter().map(|m| format!("@{m}")).collect::<Vec<_>>().join(" "));
    }
    json!({
        "msgtype": "text",
        "text": {"content": content},
        "at": {"atMobiles": mobiles, "isAtAll": false},
    })
}

/// The DingTalk robot address with `timestamp` (ms) and `sign`:
/// base64(HMAC-SHA256(key = secret, "<timestamp>\n<secret>")), URL-encoded.
pub fn dingtalk_signed_url(url: &str, secret: &str, now_ms: i64) -> String {
    let string_to_sign = format!("{now_ms}\n{secret}");
    let sign = BASE64.encode(hmac_sha256(secret.as_bytes(), string_to_sign.as_bytes()));
    let sign = percent_encoding::utf8_percent_encode(&sign, percent_encoding::NON_ALPHANUMERIC);
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}timestamp={now_ms}&sign={sign}")
}

/// The Feishu signature: base64(HMAC-SHA256(key = "<timestamp>\n<secret>", "")),
/// with the timestamp in seconds.
pub fn feishu_sign(secret: &str, timestamp_secs: i64) -> String {
    let key = format!("{timestamp_secs}\n{secret}");
    BASE64.encode(hmac_sha256(key.as_bytes(), b""))
}

/// A Feishu bot text message (signed when the bot has a secret). Feishu mentions
/// need Feishu user ids, which the org does not hold: the people are named instead.
pub fn feishu_body(
    text: &str,
    names: &[String],
    secret: Option<&str>,
    timestamp_secs: i64,
) -> Value {
    let mut content = text.to_owned();
    if !names.is_empty() {
        content.push('\n');
        content.push_str(&names.iter().map(|n| format!("@{n}")).collect::<Vec<_>>().join(" "));
    }
    let mut body = json!({"msg_type": "text", "content": {"text": content}});
    if let (Some(secret), Value::Object(map)) = (secret, &mut body) {
        map.insert("timestamp".into(), json!(timestamp_secs.to_string()));
        map.insert("sign".into(), json!(feishu_sign(secret, timestamp_secs)));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_signature() {
        // The example from the Standard Webhooks specification's reference libraries.
        let signature = webhook_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn status_classes() {
        assert!(check_status(204, "").is_ok());
        assert!(matches!(check_status(503, ""), Err(SendError::Transient(_))));
        assert!(matches!(check_status(429, ""), Err(SendError::Transient(_))));
        assert!(matches!(check_status(404, ""), Err(SendError::Permanent(_))));
    }
}
