//! The relationship graph (客户关系图谱): `GET /graph` shows the graph a pack declares
//! (`graphs:` in a rules file) for the signed-in person, one of their people
//! (`?rep=`) or a team (`?team=<manager>`); `GET /graph.svg` is the drawing alone
//! (`image/svg+xml`, which a browser opens and zooms by itself) and `GET /graph.json`
//! the same graph as JSON.
//!
//! No JavaScript: the page shows the drawing as an image and pans and zooms with
//! links that change `?zoom=`, `?x=` and `?y=`. Every record is also listed as a link
//! next to the drawing, with its highlights and the sentences that explain them.

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::i18n::words;
use super::{Page, PageError, PageLang, Signed, blocking, encode_component, query_pairs};
use crate::graph::{self, GraphError, GraphView, Key, LEGEND, NodeKind, Scope, View};
use crate::state::AppState;

/// The page's words: key, Chinese, English.
const WORDS: &[(&str, &str, &str)] = &[
    ("scope", "查看范围", "Whose records"),
    ("everyone_i_see", "我能看到的全部", "Everything I may see"),
    ("show", "查看", "Show"),
    ("team_of", "团队：", "Team: "),
    ("department_of", "部门：", "Department: "),
    ("zoom_in", "放大", "Zoom in"),
    ("zoom_out", "缩小", "Zoom out"),
    ("left", "← 左移", "← Left"),
    ("right", "右移 →", "Right →"),
    ("up", "↑ 上移", "↑ Up"),
    ("down", "↓ 下移", "↓ Down"),
    ("reset", "全图", "Whole graph"),
    (
        "open_svg",
        "单独打开图片（可用浏览器缩放）",
        "Open the picture alone (zoom with the browser)",
    ),
    ("export_json", "导出 JSON", "Export as JSON"),
    ("legend", "图例", "Legend"),
    ("legend_dormant", "沉睡（长期无联系）", "Dormant (no contact for long)"),
    ("legend_chance", "有交叉销售 / 升级机会", "Cross-sell or upgrade chance"),
    ("legend_parent", "上级记录（不在本图范围内）", "Parent record (outside this graph)"),
    ("summary", "概览", "Summary"),
    ("records", "记录", "Records"),
    ("dormant_count", "沉睡", "Dormant"),
    ("chance_count", "有机会", "With a chance"),
    ("dormant_with_chance", "沉睡且有升级机会", "Dormant, with an upgrade chance"),
    ("dormant", "沉睡", "Dormant"),
    ("chance", "机会", "Chance"),
    ("last_contact", "最近联系", "Last contact"),
    ("never", "无记录", "none recorded"),
    ("bought", "已购", "Bought"),
    ("owner", "负责人", "Owner"),
    ("profile", "全景视图", "360° view"),
    ("parent", "上级", "Parent"),
    ("linked", "关联记录", "Linked records"),
    ("nothing", "没有可显示的记录。", "There is nothing to show."),
    (
        "truncated",
        "记录太多，只显示了前一部分；请按人员或团队缩小范围。",
        "Too many records: only the first ones are shown; narrow the graph to a person or a team.",
    ),
    ("picture", "关系图", "Relationship graph"),
];

/// Zoom factors the buttons step through.
const ZOOMS: &[f64] = &[1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0];

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/graph", get(page))
        .route("/graph.svg", get(picture))
        .route("/graph.json", get(export))
}

/// What the query asks for.
#[derive(Clone, Debug, Default)]
struct Asked {
    graph: Option<String>,
    scope: Scope,
    zoom: Option<f64>,
    x: Option<f64>,
    y: Option<f64>,
}

impl Asked {
    fn of(uri: &Uri) -> Asked {
        let mut asked = Asked::default();
        let number = |text: &str| text.parse::<f64>().ok().filter(|value| value.is_finite());
        for (key, value) in query_pairs(uri) {
            let value = value.trim().to_owned();
            match key.as_str() {
                "graph" if !value.is_empty() => asked.graph = Some(value),
                "rep" if !value.is_empty() => asked.scope.rep = Some(value),
                "team" if !value.is_empty() => asked.scope.team = Some(value),
                "department" if !value.is_empty() => asked.scope.department = Some(value),
                "zoom" => asked.zoom = number(&value),
                "x" => asked.x = number(&value),
                "y" => asked.y = number(&value),
                _ => {}
            }
        }
        asked
    }

    /// The part of the drawing to show, kept inside it.
    fn view(&self, graph: &GraphView) -> View {
        let whole = View::whole(graph);
        let zoom = self.zoom.unwrap_or(1.0).clamp(1.0, 8.0);
        View {
            x: self.x.unwrap_or(whole.x).clamp(0.0, graph.width),
            y: self.y.unwrap_or(whole.y).clamp(0.0, graph.height),
            zoom,
        }
    }

    /// The query that asks for the same graph and `view`.
    fn query(&self, view: Option<View>) -> String {
        let mut pairs: Vec<String> = Vec::new();
        let mut add = |key: &str, value: &str| {
            pairs.push(format!("{key}={}", encode_component(value)));
        };
        if let Some(graph) = &self.graph {
            add("graph", graph);
        }
        if let Some(rep) = &self.scope.rep {
            add("rep", rep);
        }
        if let Some(team) = &self.scope.team {
            add("team", team);
        }
        if let Some(department) = &self.scope.department {
            add("department", department);
        }
        if let Some(view) = view {
            add("zoom", &format!("{}", view.zoom));
            add("x", &format!("{:.0}", view.x));
            add("y", &format!("{:.0}", view.y));
        }
        pairs.join("&")
    }
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") }
}

fn unknown_graph() -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "没有这个关系图谱：业务包中未声明。",
        "There is no such relationship graph: no pack declares it.",
    )
}

async fn compute(
    state: AppState,
    user: String,
    asked: Asked,
    lang: PageLang,
) -> Result<GraphView, PageError> {
    blocking(move || {
        graph::build(&state, &user, asked.graph.as_deref(), asked.scope, lang.lang)
            .map_err(|GraphError::Unknown| unknown_graph())
    })
    .await
}

/// `GET /graph.svg`: the drawing alone.
async fn picture(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    uri: Uri,
) -> Response {
    let asked = Asked::of(&uri);
    match compute(state, signed.user.clone(), asked.clone(), lang).await {
        Ok(graph) => {
            let drawing = graph::svg(&graph, asked.view(&graph), &legend(&graph, lang));
            let mut response = drawing.into_response();
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml; charset=utf-8"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
            response
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

/// `GET /graph.json`: the graph as JSON, as a download.
async fn export(
    State(state): State<AppState>,
    lang: PageLang,
    signed: Signed,
    uri: Uri,
) -> Response {
    let asked = Asked::of(&uri);
    match compute(state, signed.user.clone(), asked, lang).await {
        Ok(graph) => {
            let mut response = axum::Json(&graph).into_response();
            let headers = response.headers_mut();
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
            let name = format!("attachment; filename=\"graph-{}.json\"", graph.graph);
            if let Ok(value) = HeaderValue::from_str(&name) {
                headers.insert(CONTENT_DISPOSITION, value);
            }
            response
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

/// `GET /graph`: the page.
async fn page(State(state): State<AppState>, lang: PageLang, signed: Signed, uri: Uri) -> Response {
    let asked = Asked::of(&uri);
    let people = people(&state, &signed.user);
    let departments = departments(&state, &people, lang);
    match compute(state, signed.user.clone(), asked.clone(), lang).await {
        Ok(graph) => {
            let data = page_data(&graph, &asked, people, departments, lang);
            let switch = with_query("/graph", &asked.query(None));
            Page::render(StatusCode::OK, "graph", lang, Some(&signed), &switch, data)
                .into_response()
        }
        Err(error) => error.page(lang, Some(&signed)).into_response(),
    }
}

/// The people whose graph the viewer may ask for: themselves and everyone who reports
/// to them, with whether they lead a team.
fn people(state: &AppState, viewer: &str) -> Vec<(String, String, bool)> {
    state.with_org(|org| {
        let mut ids = vec![viewer.to_owned()];
        ids.extend(org.reports_of(viewer));
        ids.into_iter()
            .map(|id| {
                let name =
                    org.user(&id).map(|user| user.name.clone()).unwrap_or_else(|| id.clone());
                let leads = !org.reports_of(&id).is_empty();
                (id, name, leads)
            })
            .collect()
    })
}

/// The departments of those people, with links to their graphs, by id.
fn departments(state: &AppState, people: &[(String, String, bool)], lang: PageLang) -> Vec<Value> {
    state.with_org(|org| {
        let ids: BTreeSet<String> = people
            .iter()
            .filter_map(|(id, _, _)| org.user(id)?.department.as_ref().map(|d| d.to_string()))
            .collect();
        ids.into_iter()
            .map(|id| {
                let title = org
                    .departments()
                    .find(|department| department.id.as_str() == id)
                    .map(|department| lang.lang.text(&department.title))
                    .unwrap_or_else(|| id.clone());
                json!({"title": title, "href": format!("/graph?department={}", encode_component(&id))})
            })
            .collect()
    })
}

/// The legend's entries in the page's language: the centre form by its title.
fn legend(graph: &GraphView, lang: PageLang) -> Vec<Key> {
    let w = words(lang.lang, WORDS);
    LEGEND
        .iter()
        .map(|(key, colour)| Key {
            label: match *key {
                "centre" => graph.centre_title.clone(),
                _ => w
                    .get(format!("legend_{key}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            },
            colour,
            square: *key == "parent",
        })
        .collect()
}

/// A small coloured swatch, as a `data:` image (the page allows no inline styles).
fn swatch(colour: &str, square: bool) -> String {
    let shape = if square {
        format!("<rect x='1' y='1' width='12' height='12' rx='2' fill='{colour}'/>")
    } else {
        format!("<circle cx='7' cy='7' r='6' fill='{colour}'/>")
    };
    let svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='14' height='14' viewBox='0 0 14 14'>{shape}</svg>"
    );
    format!("data:image/svg+xml,{}", encode_component(&svg))
}

fn page_data(
    graph: &GraphView,
    asked: &Asked,
    people: Vec<(String, String, bool)>,
    departments: Vec<Value>,
    lang: PageLang,
) -> Value {
    let view = asked.view(graph);
    let step_x = graph.width / view.zoom / 4.0;
    let step_y = graph.height / view.zoom / 4.0;
    let zoom_step = |up: bool| {
        let next = if up {
            ZOOMS.iter().copied().find(|zoom| *zoom > view.zoom).unwrap_or(8.0)
        } else {
            ZOOMS.iter().rev().copied().find(|zoom| *zoom < view.zoom).unwrap_or(1.0)
        };
        View { zoom: next, ..view }
    };
    let moved = |dx: f64, dy: f64| View { x: view.x + dx, y: view.y + dy, ..view };
    let href = |view: View| with_query("/graph", &asked.query(Some(view)));
    let centres: Vec<&graph::Node> = graph
        .nodes
        .iter()
        .filter(|node| matches!(node.kind, NodeKind::Centre | NodeKind::Parent))
        .collect();
    let title_of =
        |id: &str| graph.nodes.iter().find(|node| node.id == id).map(|node| node.title.clone());
    let records: Vec<Value> = centres
        .iter()
        .map(|node| {
            let linked: Vec<Value> = graph
                .edges
                .iter()
                .filter(|edge| edge.to == node.id)
                .filter_map(|edge| graph.nodes.iter().find(|other| other.id == edge.from))
                .filter(|other| other.kind == NodeKind::Linked)
                .map(|other| {
                    json!({
                        "title": other.title,
                        "href": other.href,
                        "form": other.form_title,
                        "swatch": swatch(graph::linked_colour(graph, &other.form), false),
                    })
                })
                .collect();
            let parent = graph
                .edges
                .iter()
                .find(|edge| edge.from == node.id && node.kind == NodeKind::Centre)
                .filter(|edge| graph.nodes.iter().any(|other| other.id == edge.to && other.kind != NodeKind::Linked))
                .and_then(|edge| {
                    title_of(&edge.to).map(|title| {
                        json!({"title": title, "href": format!("#node-{}", edge.to)})
                    })
                });
            let products: Vec<String> =
                node.products.iter().map(|product| product.label.clone()).collect();
            json!({
                "id": node.id,
                "anchor": format!("node-{}", node.id),
                "title": node.title,
                "href": node.href,
                "profile": (node.kind == NodeKind::Centre).then(|| format!("/customers/{}", node.id)),
                "is_parent": node.kind == NodeKind::Parent,
                "owner": node.owner.clone().unwrap_or_default(),
                "dormant": node.dormant,
                "last_contact": node.last_contact.clone().unwrap_or_default(),
                "products": products.join("、"),
                "chances": node.chances.iter().map(|chance| chance.sentence.clone()).collect::<Vec<_>>(),
                "parent": parent,
                "linked": linked,
            })
        })
        .collect();
    let count = |test: &dyn Fn(&graph::Node) -> bool| {
        graph.nodes.iter().filter(|node| node.kind == NodeKind::Centre && test(node)).count()
    };
    let w = words(lang.lang, WORDS);
    let legend: Vec<Value> = legend(graph, lang)
        .iter()
        .map(|key| json!({"label": key.label, "swatch": swatch(key.colour, key.square)}))
        .collect();
    let people: Vec<Value> = people
        .into_iter()
        .map(|(id, name, leads)| {
            json!({
                "id": id,
                "name": name,
                "selected": asked.scope.rep.as_deref() == Some(id.as_str()),
                "team_href": leads.then(|| format!("/graph?team={}", encode_component(&id))),
            })
        })
        .collect();
    let query = asked.query(Some(view));
    json!({
        "title": graph.title,
        "w": w,
        "people": people,
        "departments": departments,
        "scope_all": asked.scope.rep.is_none()
            && asked.scope.team.is_none()
            && asked.scope.department.is_none(),
        "graph_id": graph.graph,
        "svg": with_query("/graph.svg", &query),
        "svg_whole": with_query("/graph.svg", &asked.query(None)),
        "json": with_query("/graph.json", &asked.query(None)),
        "nav": {
            "zoom_in": href(zoom_step(true)),
            "zoom_out": href(zoom_step(false)),
            "left": href(moved(-step_x, 0.0)),
            "right": href(moved(step_x, 0.0)),
            "up": href(moved(0.0, -step_y)),
            "down": href(moved(0.0, step_y)),
            "reset": with_query("/graph", &asked.query(None)),
        },
        "zoom": format!("{}×", view.zoom),
        "legend": legend,
        "summary": {
            "centre": graph.centre_title,
            "records": count(&|_| true),
            "dormant": count(&|node| node.dormant),
            "chance": count(&|node| !node.chances.is_empty()),
            "both": count(&|node| node.dormant && !node.chances.is_empty()),
        },
        "records": records,
        "truncated": graph.truncated,
    })
}
