//! Rendering a pack's message template for one reader: the subject (the inline
//! partial `subject`), the plain text, and an HTML version in which every value is
//! escaped and the deep link is a real link.

use handlebars::Handlebars;
use serde_json::Value;
use stagecraft_model::Id;
use stagecraft_pack::Definitions;

/// A message ready to send.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain text.
    pub text: String,
    /// The HTML body (values escaped).
    pub html: String,
    /// The language it was rendered in.
    pub locale: String,
    /// Set when the template failed in strict mode and was rendered leniently (a
    /// placeholder named a value the record does not have): the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Why a template could not be rendered at all.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template is not in the loaded packs.
    #[error("unknown template `{0}`")]
    UnknownTemplate(String),
    /// Handlebars refused it even leniently.
    #[error("template `{template}`: {reason}")]
    Failed {
        /// The template id.
        template: String,
        /// What went wrong.
        reason: String,
    },
}

/// The locale the template is available in that is nearest to the wanted one:
/// the wanted one, else `zh-CN`, else any.
pub fn pick_locale(definitions: &Definitions, template: &str, wanted: &str) -> Option<String> {
    let set = definitions.templates.get(&Id::from(template))?;
    [wanted, "zh-CN"]
        .into_iter()
        .find(|locale| set.sources.contains_key(*locale))
        .map(str::to_owned)
        .or_else(|| set.sources.keys().next().cloned())
}

/// Renders `template` in (or near) `locale` with `context`. Strict first; when a
/// placeholder names something missing, leniently, with the reason kept in
/// [`Rendered::warning`], so that a record without an optional field still tells its
/// people.
pub fn render(
    definitions: &Definitions,
    template: &str,
    locale: &str,
    context: &Value,
) -> Result<Rendered, RenderError> {
    let locale = pick_locale(definitions, template, locale)
        .ok_or_else(|| RenderError::UnknownTemplate(template.to_owned()))?;
    let source = definitions
        .templates
        .get(&Id::from(template))
        .and_then(|set| set.sources.get(&locale))
        .ok_or_else(|| RenderError::UnknownTemplate(template.to_owned()))?;
    match render_source(source, context, true) {
        Ok((subject, text, html)) => Ok(Rendered { subject, text, html, locale, warning: None }),
        Err(strict) => match render_source(source, context, false) {
            Ok((subject, text, html)) => {
                Ok(Rendered { subject, text, html, locale, warning: Some(strict) })
            }
            Err(reason) => Err(RenderError::Failed { template: template.to_owned(), reason }),
        },
    }
}

fn render_source(
    source: &str,
    context: &Value,
    strict: bool,
) -> Result<(String, String, String), String> {
    let mut text = Handlebars::new();
    text.set_strict_mode(strict);
    text.register_escape_fn(handlebars::no_escape);
    let mut html = Handlebars::new();
    html.set_strict_mode(strict);
    // The subject is the inline partial `subject`: render the template followed by a
    // call of the partial; what the call adds after the body is the subject.
    let with_subject = format!("{source}{{{{> subject}}}}");
    for registry in [&mut text, &mut html] {
        registry.register_template_string("body", source).map_err(|e| e.to_string())?;
        registry.register_template_string("subject", &with_subject).map_err(|e| e.to_string())?;
    }
    let body = text.render("body", context).map_err(|e| e.to_string())?;
    let subject = match text.render("subject", context) {
        Ok(full) => full.strip_prefix(body.as_str()).unwrap_or_default().trim().to_owned(),
        Err(_) => String::new(),
    };
    let subject = if subject.is_empty() {
        body.lines().find(|line| !line.trim().is_empty()).unwrap_or_default().trim().to_owned()
    } else {
        subject
    };
    let escaped = html.render("body", context).map_err(|e| e.to_string())?;
    let link = context.get("record_url").and_then(Value::as_str).unwrap_or_default();
    Ok((subject.clone(), tidy(&body), html_page(&subject, &escaped, link)))
}

/// Drops the blank lines a template's first line (the subject partial) leaves.
fn tidy(text: &str) -> String {
    text.trim().to_owned()
}

/// Escapes text for HTML.
pub fn escape_html(text: &str) -> String {
    handlebars::html_escape(text)
}

/// The HTML e-mail: the escaped body in paragraphs, the deep link made clickable.
fn html_page(subject: &str, escaped_body: &str, link: &str) -> String {
    let escaped_link = escape_html(link);
    let mut paragraphs = String::new();
    for paragraph in escaped_body.trim().split("\n\n") {
        let paragraph = paragraph.trim();
        if paragraph.is_empty() {
            continue;
        }
        let mut html = paragraph.replace('\n', "<br>\n");
        if !escaped_link.is_empty() && is_web_link(link) {
            html = html
                .replace(&escaped_link, &format!("<a href=\"{escaped_link}\">{escaped_link}</a>"));
        }
        paragraphs.push_str("<p>");
        paragraphs.push_str(&html);
        paragraphs.push_str("</p>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body style=\"font-family: sans-serif; line-height: 1.5\">\n{paragraphs}</body></html>\n",
        escape_html(subject)
    )
}

/// Only links the server made (http or https) become clickable.
fn is_web_link(link: &str) -> bool {
    link.starts_with("https://") || link.starts_with("http://")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subject_text_and_escaped_html() {
        let source = "{{#*inline \"subject\"}}提醒：{{record.name}}{{/inline}}\n\
                      {{#if recipient.name}}{{recipient.name}}，您好：{{/if}}\n\n\
                      商机“{{record.name}}”已停滞。{{#if task}}有待办。{{/if}}\n\n打开商机：{{record_url}}";
        let context = json!({
            "record": {"name": "<script>alert(1)</script> & 华东"},
            "record_url": "http://127.0.0.1:8080/ui/records/opportunity/o-1",
            "recipient": {"name": "林晓峰"},
        });
        let (subject, text, html) = render_source(source, &context, true).expect("renders");
        assert_eq!(subject, "提醒：<script>alert(1)</script> & 华东");
        assert!(text.starts_with("林晓峰，您好："), "{text}");
        assert!(text.contains("商机“<script>alert(1)</script> & 华东”已停滞。"), "{text}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; 华东"), "{html}");
        assert!(
            html.contains("<a href=\"http://127.0.0.1:8080/ui/records/opportunity/o-1\">"),
            "{html}"
        );
    }

    #[test]
    fn strict_mode_refuses_a_missing_value() {
        let source = "{{#*inline \"subject\"}}x{{/inline}}金额 {{record.amount}}";
        assert!(render_source(source, &json!({"record": {}}), true).is_err());
        let (_, text, _) = render_source(source, &json!({"record": {}}), false).expect("lenient");
        assert_eq!(text, "金额");
    }
}
