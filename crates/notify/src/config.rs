//! The channel settings (`notify.yaml`): where e-mail and chat messages go, with
//! secrets taken from environment variables (`${NAME}`), read once at start. Every
//! mistake is reported at once, each at its line and column.

use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};
use stagecraft_pack::{SourceFile, YamlFile};

/// The environment variable that sets the SMTP server when the file does not,
/// e.g. `smtp://127.0.0.1:2525` (no TLS), `smtp://user:pass@host:587?tls=required`
/// (STARTTLS) or `smtps://user:pass@host:465` (TLS).
pub const SMTP_URL_VARIABLE: &str = "STAGECRAFT_SMTP_URL";

/// The environment variable that sets the sender when the file does not.
pub const SMTP_FROM_VARIABLE: &str = "STAGECRAFT_SMTP_FROM";

const DEFAULT_FROM: &str = "Stagecraft <stagecraft@localhost>";

/// A value that must not appear in logs or answers (passwords, robot keys).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The SMTP server and the sender.
#[derive(Clone, Debug)]
pub struct EmailConfig {
    /// An SMTP URL as lettre reads it (it may carry a user and password).
    pub url: Secret,
    /// The `From:` mailbox, e.g. `Stagecraft <noreply@example.com>`.
    pub from: String,
}

/// A chat robot: WeCom group robot, DingTalk robot or Feishu bot.
#[derive(Clone, Debug)]
pub struct RobotConfig {
    /// The robot's webhook address (its key or token is part of it).
    pub url: Secret,
    /// The signing secret (DingTalk 加签, Feishu 签名校验), if the robot has one.
    pub secret: Option<Secret>,
}

/// A generic webhook, signed the Standard Webhooks way.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Where to POST.
    pub url: Secret,
    /// The signing key: `whsec_<base64>` as Standard Webhooks writes it, or any text
    /// (its bytes are the key).
    pub secret: Secret,
}

/// How often and how long a failing delivery is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a delivery goes to the dead-letter list.
    pub attempts: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub first_delay_ms: i64,
    /// The longest wait.
    pub max_delay_ms: i64,
    /// How long one attempt may take.
    pub timeout_ms: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            first_delay_ms: 10_000,
            max_delay_ms: 3_600_000,
            timeout_ms: 10_000,
        }
    }
}

/// The validated settings.
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    /// Where links in messages point (the server's public address), without a
    /// trailing `/`.
    pub public_url: String,
    /// The language of group messages and of people whose org entry has none.
    pub locale: String,
    /// The offset of local time from UTC in minutes, for quiet hours.
    pub utc_offset_minutes: i32,
    /// E-mail.
    pub email: Option<EmailConfig>,
    /// 企业微信 group robot.
    pub wecom: Option<RobotConfig>,
    /// 钉钉 robot.
    pub dingtalk: Option<RobotConfig>,
    /// 飞书 bot.
    pub feishu: Option<RobotConfig>,
    /// Signed generic webhook.
    pub webhook: Option<WebhookConfig>,
    /// Retries.
    pub retry: RetryPolicy,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            public_url: "http://127.0.0.1:8080".to_owned(),
            locale: "zh-CN".to_owned(),
            utc_offset_minutes: 8 * 60,
            email: None,
            wecom: None,
            dingtalk: None,
            feishu: None,
            webhook: None,
            retry: RetryPolicy::default(),
        }
    }
}

/// Why the settings could not be read: every problem, each `file:line:col: message`.
#[derive(Debug, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct ConfigError {
    /// The problems, in file order.
    pub problems: Vec<String>,
}

impl NotifyConfig {
    /// The settings from a file (when given) and the environment: without a file,
    /// only `STAGECRAFT_SMTP_URL` can turn e-mail on, and the inbox works regardless.
    pub fn load(path: Option<&Path>) -> Result<NotifyConfig, ConfigError> {
        Self::load_with(path, &|name| std::env::var(name).ok())
    }

    /// [`NotifyConfig::load`] with the environment given (for tests).
    pub fn load_with(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NotifyConfig, ConfigError> {
        let mut config = match path {
            None => NotifyConfig::default(),
            Some(path) => {
                let source = SourceFile::read(path).map_err(|diagnostic| ConfigError {
                    problems: vec![format!("{}: {}", path.display(), diagnostic.message)],
                })?;
                let file = YamlFile::parse(source).map_err(|diagnostic| ConfigError {
                    problems: vec![match &diagnostic.location {
                        Some(at) => {
                            format!("{}:{}:{}: {}", at.file, at.line, at.column, diagnostic.message)
                        }
                        None => diagnostic.message.clone(),
                    }],
                })?;
                let mut reader = Reader { file: &file, env, problems: Vec::new() };
                let config = reader.config();
                if !reader.problems.is_empty() {
                    return Err(ConfigError { problems: reader.problems });
                }
                config
            }
        };
        if config.email.is_none()
            && let Some(url) = env(SMTP_URL_VARIABLE).filter(|url| !url.trim().is_empty())
        {
            let from = env(SMTP_FROM_VARIABLE).unwrap_or_else(|| DEFAULT_FROM.to_owned());
            config.email = Some(EmailConfig { url: Secret::new(url.trim()), from });
        }
        if let Some(email) = &config.email {
            check_smtp_url(email.url.expose())
                .map_err(|problem| ConfigError { problems: vec![format!("e-mail: {problem}")] })?;
        }
        Ok(config)
    }

    /// One line for the console at start: which channels are on.
    pub fn describe(&self) -> String {
        let mut on = vec!["in-app inbox".to_owned()];
        if let Some(email) = &self.email {
            on.push(format!("e-mail via {}", smtp_server(email.url.expose())));
        }
        for (name, robot) in
            [("WeCom", &self.wecom), ("DingTalk", &self.dingtalk), ("Feishu", &self.feishu)]
        {
            if robot.is_some() {
                on.push(name.to_owned());
            }
        }
        if self.webhook.is_some() {
            on.push("signed webhook".to_owned());
        }
        let mut line = format!("notifications: {}", on.join(", "));
        if self.email.is_none() {
            line.push_str(&format!(
                " (e-mail is off: no `email` in the notification settings and no \
                 {SMTP_URL_VARIABLE}; e-mails are recorded as skipped)"
            ));
        }
        line
    }
}

/// `smtp://host:port (no TLS)` without the user and password, for the console.
fn smtp_server(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("smtp", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
    let tls = if scheme == "smtps" {
        "TLS"
    } else if query.contains("tls=required") {
        "STARTTLS"
    } else if query.contains("tls=opportunistic") {
        "STARTTLS if offered"
    } else {
        "no TLS"
    };
    format!("{scheme}://{host} ({tls})")
}

fn check_smtp_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "`{}` is not an SMTP URL (e.g. smtp://127.0.0.1:2525)",
            smtp_server(url)
        ));
    };
    if scheme != "smtp" && scheme != "smtps" {
        return Err(format!("the SMTP URL must start with smtp:// or smtps://, not {scheme}://"));
    }
    if rest.is_empty() || rest.starts_with(['/', '?', ':']) {
        return Err("the SMTP URL names no host".to_owned());
    }
    Ok(())
}

struct Reader<'a> {
    file: &'a YamlFile,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn problem_at(&mut self, pointer: &str, key: bool, message: String) {
        let at =
            if key { self.file.key_location(pointer) } else { self.file.value_location(pointer) };
        self.problems.push(format!("{}:{}:{}: {message}", at.file, at.line, at.column));
    }

    fn map<'v>(
        &mut self,
        value: &'v Value,
        pointer: &str,
        keys: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Value::Object(map) = value else {
            self.problem_at(pointer, false, "expected a mapping of settings".to_owned());
            return None;
        };
        for key in map.keys() {
            if !keys.contains(&key.as_str()) {
                self.problem_at(
                    &format!("{pointer}/{key}"),
                    true,
                    format!("unknown key `{key}`; expected one of: {}", keys.join(", ")),
                );
            }
        }
        Some(map)
    }

    /// A text value with `${NAME}` replaced by the environment.
    fn text(&mut self, map: &Map<String, Value>, pointer: &str, key: &str) -> Option<String> {
        let value = map.get(key)?;
        let pointer = format!("{pointer}/{key}");
        let Value::String(text) = value else {
            self.problem_at(&pointer, false, format!("`{key}` must be text"));
            return None;
        };
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else {
                self.problem_at(&pointer, false, "`${` without a closing `}`".to_owned());
                return None;
            };
            let name = &rest[start + 2..start + end];
            match (self.env)(name) {
                Some(value) => out.push_str(&value),
                None => {
                    self.problem_at(
                        &pointer,
                        false,
                        format!("the environment variable `{name}` is not set"),
                    );
                    return None;
                }
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn required(&mut self, map: &Map<String, Value>, pointer: &str, key: &str) -> Option<String> {
        if !map.contains_key(key) {
            self.problem_at(pointer, true, format!("`{key}` is missing"));
            return None;
        }
        self.text(map, pointer, key)
    }

    fn http_url(&mut self, map: &Map<String, Value>, pointer: &str) -> Option<Secret> {
        let url = self.required(map, pointer, "url")?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            self.problem_at(
                &format!("{pointer}/url"),
                false,
                "the address must start with https:// (or http:// on a private network)".to_owned(),
            );
            return None;
        }
        Some(Secret::new(url))
    }

    fn robot(&mut self, root: &Map<String, Value>, key: &str) -> Option<RobotConfig> {
        let value = root.get(key)?;
        let pointer = format!("/{key}");
        let map = self.map(value, &pointer, &["url", "secret"])?;
        let url = self.http_url(map, &pointer);
        let secret = self.text(map, &pointer, "secret").map(Secret::new);
        Some(RobotConfig { url: url?, secret })
    }

    fn duration_ms(&mut self, map: &Map<String, Value>, pointer: &str, key: &str) -> Option<i64> {
        let text = self.text(map, pointer, key)?;
        match parse_duration_ms(&text) {
            Some(ms) if ms > 0 => Some(ms),
            _ => {
                self.problem_at(
                    &format!("{pointer}/{key}"),
                    false,
                    format!("`{text}` is not a duration; write e.g. `30s`, `5m` or `1h`"),
                );
                None
            }
        }
    }

    fn config(&mut self) -> NotifyConfig {
        let mut config = NotifyConfig::default();
        let root_value = self.file.value.clone();
        let Some(root) = self.map(
            &root_value,
            "",
            &[
                "public_url",
                "locale",
                "timezone",
                "email",
                "wecom",
                "dingtalk",
                "feishu",
                "webhook",
                "retry",
            ],
        ) else {
            return config;
        };
        if let Some(url) = self.text(root, "", "public_url") {
            config.public_url = url.trim_end_matches('/').to_owned();
        }
        if let Some(locale) = self.text(root, "", "locale") {
            if locale == "zh-CN" || locale == "en" {
                config.locale = locale;
            } else {
                self.problem_at("/locale", false, format!("`{locale}` is not `zh-CN` or `en`"));
            }
        }
        if let Some(zone) = self.text(root, "", "timezone") {
            match parse_offset(&zone) {
                Some(minutes) => config.utc_offset_minutes = minutes,
                None => self.problem_at(
                    "/timezone",
                    false,
                    format!("`{zone}` is not an offset from UTC such as \"+08:00\""),
                ),
            }
        }
        if let Some(value) = root.get("email")
            && let Some(map) = self.map(value, "/email", &["url", "from"])
        {
            // Without `url` here, STAGECRAFT_SMTP_URL may still give one.
            let url = self.text(map, "/email", "url").filter(|url| !url.trim().is_empty());
            let from = self.text(map, "/email", "from").unwrap_or_else(|| DEFAULT_FROM.to_owned());
            if let Some(url) = url {
                if let Err(problem) = check_smtp_url(url.trim()) {
                    self.problem_at("/email/url", false, problem);
                }
                config.email = Some(EmailConfig { url: Secret::new(url.trim()), from });
            }
        }
        config.wecom = self.robot(root, "wecom");
        config.dingtalk = self.robot(root, "dingtalk");
        config.feishu = self.robot(root, "feishu");
        if let Some(value) = root.get("webhook")
            && let Some(map) = self.map(value, "/webhook", &["url", "secret"])
        {
            let url = self.http_url(map, "/webhook");
            let secret = self.required(map, "/webhook", "secret");
            if let (Some(url), Some(secret)) = (url, secret) {
                config.webhook = Some(WebhookConfig { url, secret: Secret::new(secret) });
            }
        }
        if let Some(value) = root.get("retry")
            && let Some(map) =
                self.map(value, "/retry", &["attempts", "first_delay", "max_delay", "timeout"])
        {
            if let Some(attempts) = map.get("attempts") {
                match attempts.as_u64().filter(|n| (1..=100).contains(n)) {
                    Some(n) => config.retry.attempts = n as u32,
                    None => self.problem_at(
                        "/retry/attempts",
                        false,
                        "`attempts` must be a whole number from 1 to 100".to_owned(),
                    ),
                }
            }
            if let Some(ms) = self.duration_ms(map, "/retry", "first_delay") {
                config.retry.first_delay_ms = ms;
            }
            if let Some(ms) = self.duration_ms(map, "/retry", "max_delay") {
                config.retry.max_delay_ms = ms;
            }
            if let Some(ms) = self.duration_ms(map, "/retry", "timeout") {
                config.retry.timeout_ms = ms;
            }
        }
        config
    }
}

/// `250ms`, `30s`, `5m`, `1h`, `1d` in milliseconds.
pub(crate) fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// `+08:00` → 480.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    ((0..=14).contains(&hours) && (0..60).contains(&minutes))
        .then_some(sign * (hours * 60 + minutes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<NotifyConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.yaml");
        std::fs::write(&path, text).expect("write");
        let env: Vec<(String, String)> =
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        NotifyConfig::load_with(Some(&path), &|name| {
            env.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone())
        })
    }

    #[test]
    fn secrets_come_from_the_environment_and_stay_out_of_debug_output() {
        let config = load(
            "public_url: https://crm.example.com/\n\
             email: {url: \"${SMTP}\", from: \"CRM <crm@example.com>\"}\n\
             wecom: {url: \"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=${KEY}\"}\n\
             retry: {attempts: 3, first_delay: 1s}\n",
            &[("SMTP", "smtp://user:hunter2@mail.example.com:587?tls=required"), ("KEY", "k-123")],
        )
        .expect("valid settings");
        assert_eq!(config.public_url, "https://crm.example.com");
        assert_eq!(
            config.wecom.as_ref().map(|w| w.url.expose()),
            Some("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k-123")
        );
        assert_eq!(config.retry.attempts, 3);
        assert_eq!(config.retry.first_delay_ms, 1000);
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("k-123"), "{debug}");
        let line = config.describe();
        assert!(line.contains("smtp://mail.example.com:587 (STARTTLS)"), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
    }

    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let error = load(
            "public_url: http://x\n\
             emial: {}\n\
             wecom:\n  url: ftp://robot\n\
             webhook:\n  url: \"https://h.example.com/${MISSING}\"\n\
             retry: {attempts: 0, first_delay: soon}\n",
            &[],
        )
        .expect_err("invalid settings");
        let text = error.to_string();
        for expected in [
            "notify.yaml:2:1: unknown key `emial`",
            "notify.yaml:4:8: the address must start with https://",
            "notify.yaml:6:8: the environment variable `MISSING` is not set",
            "notify.yaml:5:1: `secret` is missing",
            "`attempts` must be a whole number",
            "`soon` is not a duration",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn the_smtp_url_may_come_from_the_environment_alone() {
        let config = NotifyConfig::load_with(None, &|name| {
            (name == SMTP_URL_VARIABLE).then(|| "smtp://127.0.0.1:2525".to_owned())
        })
        .expect("valid");
        assert_eq!(
            config.email.map(|e| e.url.expose().to_owned()).as_deref(),
            Some("smtp://127.0.0.1:2525")
        );
        let none = NotifyConfig::load_with(None, &|_| None).expect("valid");
        assert!(none.email.is_none());
        assert!(none.describe().contains("e-mail is off"));
    }
}
