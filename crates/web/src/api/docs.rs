//! The OpenAPI 3.1 document: its head (what the API is, its key, its tags), the answers every
//! operation may give (added to each, so no operation forgets one), and the document served as
//! JSON and as a page read in the browser — both built once, from the binary alone.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::header::Header;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Object, OpenApi, Ref, RefOr, Type};

/// What every operation states.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Loyalty Bridge partner API",
        version = "1",
        description = "A salon's loyalty program for other software: find and create clients, \
            read balances and history, add or write off points, push visits from a POS or a \
            CRM we do not connect to (they go through the same rules as a CRM's webhook), \
            list rewards, redeem them for codes, check and use codes. Keys are made with \
            `api-key add` or on the dashboard's API page and sent as `Authorization: Bearer \
            <key>`; the salon's plan must include the API (Enterprise). Every POST that moves \
            points or creates something needs an `Idempotency-Key`: the same key and request \
            within 24 hours get the first answer again (`Idempotent-Replayed: true`), the \
            same key with another request is a 409. Errors are RFC 9457 problem details \
            (`application/problem+json`) with a stable `code`. Money is in minor units \
            (kopecks), points are whole numbers, times are Unix milliseconds."
    ),
    tags(
        (name = "clients", description = "Clients, their balance, history and points"),
        (name = "visits", description = "Visits pushed by a POS or an unsupported CRM"),
        (name = "rewards", description = "The rewards catalog, redemptions and codes"),
        (name = "program", description = "Levels, referrals and custom triggers"),
        (name = "webhooks", description = "Endpoints told of events, signed the Standard \
            Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`), and the \
            deliveries owed to them"),
    ),
    security(("bearer" = [])),
    modifiers(&Bearer),
)]
struct Head;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document before the operations join it.
pub fn base() -> OpenApi {
    <Head as utoipa::OpenApi>::openapi()
}

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            Content::new(Some(Ref::from_schema_name("ProblemDoc"))),
        )
        .build()
        .into()
}

/// Adds to every operation the answers any request may get: no or a wrong key, a plan or
/// scope that does not allow it, the rate limit, our failure, a database that is not there.
pub fn finish(api: &mut OpenApi) {
    let limited = ResponseBuilder::new()
        .description("Too many requests with this key (`rate_limited`)")
        .content(
            "application/problem+json",
            Content::new(Some(Ref::from_schema_name("ProblemDoc"))),
        )
        .header("Retry-After", Header::new(Object::with_type(Type::Integer)))
        .build();
    let common: [(&str, RefOr<utoipa::openapi::Response>); 5] = [
        (
            "401",
            problem("No key, an unknown or a revoked key (`unauthorized`)"),
        ),
        (
            "403",
            problem(
                "The salon's plan has no API (`plan`), or a read key tried to change \
                 something (`read_only_key`)",
            ),
        ),
        ("429", limited.into()),
        (
            "500",
            problem("Something went wrong on our side (`internal`)"),
        ),
        (
            "503",
            problem("The database is not answering; try again (`unavailable`)"),
        ),
    ];
    // A POST that carries an Idempotency-Key may meet it used or busy.
    let reused: RefOr<utoipa::openapi::Response> = ResponseBuilder::new()
        .description(
            "The Idempotency-Key was used with another request (`idempotency_conflict`), or \
             its first request is still being answered (`request_in_progress`; retry after \
             `Retry-After`)",
        )
        .content(
            "application/problem+json",
            Content::new(Some(Ref::from_schema_name("ProblemDoc"))),
        )
        .header("Retry-After", Header::new(Object::with_type(Type::Integer)))
        .build()
        .into();
    for item in api.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post, &mut item.delete]
            .into_iter()
            .flatten()
        {
            for (status, response) in &common {
                op.responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| response.clone());
            }
        }
        // A POST that only reads (a preview) takes no key and meets no 409.
        let keyed = |op: &utoipa::openapi::path::Operation| {
            op.parameters
                .iter()
                .flatten()
                .any(|p| matches!(p, RefOr::T(p) if p.name == "Idempotency-Key"))
        };
        if let Some(op) = item.post.as_mut().filter(|op| keyed(op)) {
            op.responses
                .responses
                .entry("409".to_owned())
                .or_insert_with(|| reused.clone());
        }
    }
}

/// The document as served: JSON, and the page that reads it.
pub struct Served {
    json: String,
    page: String,
}

impl Served {
    pub fn new(api: &OpenApi) -> Served {
        let json = api.to_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document did not serialise");
            "{}".to_owned()
        });
        let value: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
        let page = Reference::of(&value)
            .render()
            .unwrap_or_else(|e| format!("the reference did not render: {e}"));
        Served { json, page }
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn json(State(served): State<Arc<Served>>) -> Response {
    let mut r = served.json.clone().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `GET /api/v1/docs`: the reference, one section per operation, then the shapes.
pub async fn page(State(served): State<Arc<Served>>) -> Html<String> {
    Html(served.page.clone())
}

/// One operation on the page.
struct Op {
    method: String,
    path: String,
    anchor: String,
    tag: String,
    summary: String,
    description: String,
    params: Vec<Param>,
    body: Option<String>,
    responses: Vec<(String, String, String)>,
}

struct Param {
    name: String,
    place: String,
    kind: String,
    required: bool,
    description: String,
}

/// One shape on the page: its fields.
struct Shape {
    name: String,
    description: String,
    fields: Vec<Param>,
}

#[derive(Template)]
#[template(path = "api_reference.html")]
struct Reference {
    css: String,
    title: String,
    intro: String,
    ops: Vec<Op>,
    shapes: Vec<Shape>,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// A schema's type as read: a shape's name, `array of …`, `string | null`.
fn kind(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    if let Some(all) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .or_else(|| schema.get("allOf"))
        .and_then(Value::as_array)
    {
        return all.iter().map(kind).collect::<Vec<_>>().join(" | ");
    }
    let base = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".to_owned(),
    };
    if base.starts_with("array") {
        return format!(
            "array of {}",
            kind(schema.get("items").unwrap_or(&Value::Null))
        );
    }
    match schema.get("enum").and_then(Value::as_array) {
        Some(values) => values
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" | "),
        None => base,
    }
}

impl Reference {
    fn of(doc: &Value) -> Reference {
        let info = doc.get("info").unwrap_or(&Value::Null);
        let mut ops = Vec::new();
        if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
            for (path, item) in paths {
                for method in ["get", "post", "delete"] {
                    if let Some(op) = item.get(method) {
                        ops.push(Op::of(method, path, op));
                    }
                }
            }
        }
        ops.sort_by(|a, b| (&a.tag, &a.path, &a.method).cmp(&(&b.tag, &b.path, &b.method)));
        let shapes = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .map(|all| {
                all.iter()
                    .map(|(name, s)| Shape::of(name, s))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        Reference {
            css: crate::assets::css_url(),
            title: text(info, "title"),
            intro: text(info, "description"),
            ops,
            shapes,
        }
    }
}

impl Op {
    fn of(method: &str, path: &str, op: &Value) -> Op {
        let params = op
            .get("parameters")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .map(|p| Param {
                        name: text(p, "name"),
                        place: text(p, "in"),
                        kind: kind(p.get("schema").unwrap_or(&Value::Null)),
                        required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
                        description: text(p, "description"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let body = op
            .pointer("/requestBody/content/application~1json/schema")
            .map(kind);
        let responses = op
            .get("responses")
            .and_then(Value::as_object)
            .map(|rs| {
                rs.iter()
                    .map(|(status, r)| {
                        let shape = r
                            .get("content")
                            .and_then(Value::as_object)
                            .and_then(|c| c.values().next())
                            .and_then(|c| c.get("schema"))
                            .map(kind)
                            .unwrap_or_default();
                        (status.clone(), text(r, "description"), shape)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Op {
            method: method.to_uppercase(),
            path: path.to_owned(),
            anchor: format!("{method}-{}", path.replace(['/', '{', '}'], "-")),
            tag: op
                .get("tags")
                .and_then(|t| t.get(0))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            summary: text(op, "summary"),
            description: text(op, "description"),
            params,
            body,
            responses,
        }
    }
}

impl Shape {
    fn of(name: &str, schema: &Value) -> Shape {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let fields = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|ps| {
                ps.iter()
                    .map(|(field, s)| Param {
                        name: field.clone(),
                        place: String::new(),
                        kind: kind(s),
                        required: required.contains(&field.as_str()),
                        description: text(s, "description"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Shape {
            name: name.to_owned(),
            description: text(schema, "description"),
            fields,
        }
    }
}
