//! The words of the pages themselves (the packs bring the words of forms and flows):
//! one table, Chinese and English side by side, given to every template as `t`.

use serde_json::{Map, Value};

use super::Lang;

/// Key, Chinese, English.
const LABELS: &[(&str, &str, &str)] = &[
    ("approve", "通过", "Approve"),
    ("approvals", "审批", "Approvals"),
    ("approvers", "审批人", "Approvers"),
    ("back_home", "返回工作台", "Back to the workbench"),
    ("cancel", "取消", "Cancel"),
    ("created_at", "创建于", "created"),
    ("due", "截止", "due"),
    ("edit", "编辑", "Edit"),
    ("error_title", "出错了", "Something went wrong"),
    ("fields", "详细信息", "Details"),
    ("fix_errors", "请修改标红的内容后再提交。", "Please correct the fields marked in red."),
    ("flow_ended", "流程已结束。", "The flow has ended."),
    ("gate_closed", "暂不能进入：", "not yet possible:"),
    ("gate_open", "条件已满足", "all conditions met"),
    ("history", "历史记录", "History"),
    ("home", "工作台", "Workbench"),
    ("inbox", "收件箱", "Inbox"),
    ("inbox_empty", "暂无通知。", "No notifications yet."),
    ("inbox_newest", "最新通知", "Newest"),
    ("inbox_older", "更早的通知", "Older notifications"),
    ("key_actions", "关键动作", "Key actions"),
    ("mark_read", "标为已读", "Mark as read"),
    ("menu", "主菜单", "Main menu"),
    ("menu_audit", "流程审计", "Process audit"),
    ("menu_board", "商机看板", "Pipeline board"),
    ("menu_dashboard", "业绩仪表盘", "Dashboard"),
    ("menu_graph", "客户关系图谱", "Relationship graph"),
    ("menu_import", "数据导入", "Import"),
    ("menu_pool", "客户池", "Customer pool"),
    ("menu_suggestions", "流程优化建议", "Suggestions"),
    ("menu_todos", "我的待办", "My to-dos"),
    ("menu_welcome", "新手引导", "Getting started"),
    ("more_records", "仅显示最近的部分记录。", "Only the most recent records are shown."),
    ("my_records", "我的记录", "My records"),
    ("my_tasks", "我的待办", "My to-dos"),
    ("new_record", "新建", "Create"),
    ("next_steps", "下一步", "Next steps"),
    ("no_tasks", "暂无待办。", "Nothing to do right now."),
    ("none", "暂无记录。", "No records yet."),
    ("open_record", "查看记录", "Open the record"),
    ("open_tasks", "待办事项", "Open tasks"),
    ("owner", "负责人", "Owner"),
    ("password", "密码", "Password"),
    ("reason", "意见（驳回时必填）", "Comment (required to reject)"),
    ("reject", "驳回", "Reject"),
    ("sign_in", "登录", "Sign in"),
    ("sign_out", "退出", "Sign out"),
    ("stage", "当前阶段", "Stage"),
    ("unread", "未读", "Unread"),
    ("username", "用户名", "Username"),
    ("version", "版本", "version"),
    ("workbench", "工作台", "Workbench"),
];

/// The labels in one language, as the templates' `t`.
pub(crate) fn labels(lang: Lang) -> Value {
    words(lang, LABELS)
}

/// A table of words (key, Chinese, English) in one language. A page with words of its
/// own keeps them in its module and hands them to its template as `w`.
pub(crate) fn words(lang: Lang, table: &[(&str, &str, &str)]) -> Value {
    let mut map = Map::new();
    for (key, zh, en) in table {
        map.insert((*key).to_owned(), Value::String(lang.pick(zh, en).to_owned()));
    }
    Value::Object(map)
}

/// The notice a page's address asks for after a redirect (`?done=claimed`,
/// `?refused=limit`): `(refused, key)` where the key (`done_claimed`, `refused_limit`)
/// is one of `table`'s; anything else in the address is ignored.
pub(crate) fn notice(
    uri: &axum::http::Uri,
    table: &[(&str, &str, &str)],
) -> Option<(bool, String)> {
    super::query_pairs(uri).into_iter().rev().find_map(|(key, value)| {
        let known = |prefix: &str| {
            let key = format!("{prefix}_{value}");
            table.iter().any(|(known, _, _)| *known == key).then_some(key)
        };
        match key.as_str() {
            "done" => known("done").map(|key| (false, key)),
            "refused" => known("refused").map(|key| (true, key)),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::LABELS;

    #[test]
    fn every_label_has_both_languages_once() {
        let mut keys: Vec<&str> = LABELS.iter().map(|(key, _, _)| *key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), LABELS.len(), "a key is listed twice");
        for (key, zh, en) in LABELS {
            assert!(!zh.is_empty() && !en.is_empty(), "{key}");
        }
    }
}
