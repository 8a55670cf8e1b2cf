//! Turning a cell's text into a field's value by the field's schema: numbers and
//! money, dates in the usual formats, yes/no in both languages, enumerations by value
//! or by label, lists. Whether the value then fits the form is the form's validator's
//! business, not this module's.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use serde_json::{Number, Value};

/// Why a cell could not be read, in both languages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// In Chinese.
    pub zh: String,
    /// In English.
    pub en: String,
}

impl Unreadable {
    pub(crate) fn new(zh: impl Into<String>, en: impl Into<String>) -> Self {
        Unreadable { zh: zh.into(), en: en.into() }
    }
}

/// The JSON type a schema gives a field (`string` when it says nothing else).
fn json_type(schema: &Value) -> &str {
    match schema.get("type") {
        Some(Value::String(kind)) => kind,
        Some(Value::Array(kinds)) => {
            kinds.iter().filter_map(Value::as_str).find(|kind| *kind != "null").unwrap_or("string")
        }
        _ => "string",
    }
}

/// The value of `text` for a field with `schema`; `offset` is the file's time zone.
pub fn convert(schema: &Value, text: &str, offset: FixedOffset) -> Result<Value, Unreadable> {
    let text = text.trim();
    match json_type(schema) {
        "integer" => {
            let number = number(text)?;
            if number.fract() != 0.0 || number.abs() > 9.0e15 {
                return Err(Unreadable::new(
                    format!("「{text}」不是整数"),
                    format!("“{text}” is not a whole number"),
                ));
            }
            Ok(Value::from(number as i64))
        }
        "number" => {
            let number = number(text)?;
            Number::from_f64(number)
                .map(Value::Number)
                .ok_or_else(|| Unreadable::new("数字无效", "not a valid number"))
        }
        "boolean" => boolean(text).map(Value::Bool),
        "array" => {
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            text.split([';', '；', ',', '，', '、', '|'])
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| convert(&items, item, offset))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        _ => string(schema, text, offset),
    }
}

/// A string: an enumeration's value (by value or by its zh-CN/en label), a date, a
/// date-time, or the text itself.
fn string(schema: &Value, text: &str, offset: FixedOffset) -> Result<Value, Unreadable> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return choice(schema, values, text).map(Value::String);
    }
    match schema.get("format").and_then(Value::as_str) {
        Some("date") => date_time(text, offset)
            .map(|moment| Value::String(moment.date_naive().format("%Y-%m-%d").to_string())),
        Some("date-time") => {
            date_time(text, offset).map(|moment| Value::String(moment.to_rfc3339()))
        }
        _ => Ok(Value::String(text.to_owned())),
    }
}

/// One of an enumeration's values, named by value (any case) or by an option label.
fn choice(schema: &Value, values: &[Value], text: &str) -> Result<String, Unreadable> {
    let labels = schema
        .get("x-ui")
        .and_then(|ui| ui.get("options"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (index, value) in values.iter().enumerate() {
        let Some(value) = value.as_str() else { continue };
        let by_label = labels.get(index).is_some_and(|label| match label {
            Value::String(plain) => crate::mapping::same(plain, text),
            Value::Object(texts) => texts
                .values()
                .filter_map(Value::as_str)
                .any(|label| crate::mapping::same(label, text)),
            _ => false,
        });
        if value == text || crate::mapping::same(value, text) || by_label {
            return Ok(value.to_owned());
        }
    }
    let allowed: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
    Err(Unreadable::new(
        format!("「{text}」不是可选值之一（{}）", allowed.join("、")),
        format!("“{text}” is not one of the choices ({})", allowed.join(", ")),
    ))
}

/// A number written the usual ways: `1,234.5`, `¥1234`, `12.5万`, `30%` stays 30.
pub fn number(text: &str) -> Result<f64, Unreadable> {
    let mut cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, ',' | '，' | '¥' | '￥' | '$' | '%'))
        .collect();
    let mut scale = 1.0;
    for (suffix, factor) in
        [("元", 1.0), ("万元", 1.0e4), ("万", 1.0e4), ("亿元", 1.0e8), ("亿", 1.0e8)]
    {
        if let Some(stripped) = cleaned.strip_suffix(suffix) {
            cleaned = stripped.to_owned();
            scale = factor;
        }
    }
    let unreadable =
        || Unreadable::new(format!("「{text}」不是数字"), format!("“{text}” is not a number"));
    let number: f64 = cleaned.parse().map_err(|_| unreadable())?;
    let number = number * scale;
    if number.is_finite() { Ok(number) } else { Err(unreadable()) }
}

/// Yes or no, in either language.
pub fn boolean(text: &str) -> Result<bool, Unreadable> {
    let lowered = text.to_lowercase();
    match lowered.as_str() {
        "是" | "对" | "有" | "yes" | "y" | "true" | "t" | "1" | "✓" | "√" => Ok(true),
        "否" | "不" | "错" | "无" | "no" | "n" | "false" | "f" | "0" | "✗" | "×" => {
            Ok(false)
        }
        _ => Err(Unreadable::new(
            format!("「{text}」不是“是/否”"),
            format!("“{text}” is not yes or no"),
        )),
    }
}

/// The usual ways of writing a date without a time.
const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d"];

/// The usual ways of writing a date with a time.
const DATE_TIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y.%m.%d %H:%M:%S",
    "%Y.%m.%d %H:%M",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
];

/// A moment written as a date (`2026-03-05`, `2026/3/5`, `2026年3月5日`), a date and
/// time (`2026-03-05 14:30`), RFC 3339 (`2026-03-05T14:30:00+08:00`) or Unix
/// milliseconds; without an offset, in the file's time zone.
pub fn date_time(text: &str, offset: FixedOffset) -> Result<DateTime<FixedOffset>, Unreadable> {
    let text = text.trim();
    if let Ok(moment) = DateTime::parse_from_rfc3339(text) {
        return Ok(moment);
    }
    let local = |naive: NaiveDateTime| offset.from_local_datetime(&naive).single();
    for format in DATE_TIME_FORMATS {
        if let Some(moment) = NaiveDateTime::parse_from_str(text, format).ok().and_then(local) {
            return Ok(moment);
        }
    }
    for format in DATE_FORMATS {
        if let Some(moment) = NaiveDate::parse_from_str(text, format)
            .ok()
            .map(|date| date.and_time(NaiveTime::MIN))
            .and_then(local)
        {
            return Ok(moment);
        }
    }
    if text.len() >= 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        if let Some(moment) = text
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .map(|utc| utc.with_timezone(&offset))
        {
            return Ok(moment);
        }
    }
    Err(Unreadable::new(
        format!("「{text}」不是日期（例如 2026-03-05、2026/3/5、2026-03-05 14:30）"),
        format!("“{text}” is not a date (e.g. 2026-03-05, 2026/3/5, 2026-03-05 14:30)"),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn china() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).expect("offset")
    }

    #[test]
    fn numbers_and_money() {
        assert_eq!(number("1,234.5").ok(), Some(1234.5));
        assert_eq!(number("¥ 80000").ok(), Some(80000.0));
        assert_eq!(number("12.5万").ok(), Some(125000.0));
        assert_eq!(number("300元").ok(), Some(300.0));
        assert!(number("abc").is_err());
        assert_eq!(convert(&json!({"type": "integer"}), "42", china()).ok(), Some(json!(42)));
        assert!(convert(&json!({"type": "integer"}), "4.2", china()).is_err());
    }

    #[test]
    fn dates_in_common_formats() {
        let date = json!({"type": "string", "format": "date"});
        for text in ["2026-03-05", "2026/3/5", "2026.3.5", "2026年3月5日", "2026-03-05 14:30"] {
            assert_eq!(convert(&date, text, china()).ok(), Some(json!("2026-03-05")), "{text}");
        }
        let moment = date_time("2026/3/5 14:30", china()).expect("date");
        assert_eq!(moment.to_rfc3339(), "2026-03-05T14:30:00+08:00");
        assert!(date_time("next week", china()).is_err());
        assert!(date_time("2026-02-30", china()).is_err());
    }

    #[test]
    fn booleans_in_both_languages() {
        assert_eq!(boolean("是").ok(), Some(true));
        assert_eq!(boolean("否").ok(), Some(false));
        assert_eq!(boolean("Yes").ok(), Some(true));
        assert!(boolean("maybe").is_err());
    }

    #[test]
    fn choices_by_value_or_label() {
        let schema = json!({"type": "string", "enum": ["east", "north"],
            "x-ui": {"options": [{"zh-CN": "华东", "en": "East China"}, {"zh-CN": "华北", "en": "North China"}]}});
        assert_eq!(convert(&schema, "华东", china()).ok(), Some(json!("east")));
        assert_eq!(convert(&schema, "north china", china()).ok(), Some(json!("north")));
        assert_eq!(convert(&schema, "EAST", china()).ok(), Some(json!("east")));
        let error = convert(&schema, "西部", china()).expect_err("not a choice");
        assert!(error.en.contains("east, north"), "{}", error.en);
    }

    #[test]
    fn lists_split_on_usual_separators() {
        let schema = json!({"type": "array", "items": {"type": "string"}});
        assert_eq!(
            convert(&schema, "老客户、展会线索; VIP", china()).ok(),
            Some(json!(["老客户", "展会线索", "VIP"]))
        );
    }
}
