//! Webhook deliveries → events.
//!
//! The body (confirmed by SQNS support, 2026-06): `{object, type, orgId, orgName, product,
//! <object>: {…}}`, `object` ∈ `visit | client | service | commodity`, `type` ∈ `create | update
//! | delete`; a visit's body is the whole visit object. A commodity has been seen arriving as
//! `object: "service"` with a `commodity` key. Each hook is sent once, unsigned and in no
//! order: the URL's secret names the connection, and a partial or doubtful body is fetched
//! again through the inbox rather than trusted.

use crm_http::lenient;
use loyalty_core::WebhookError;
use loyalty_core::event::{ClientEvent, CrmEvent, OtherEvent, VisitStatus};
use serde_json::{Map, Value};

use crate::visit::{self, Malformed, ParseContext};

/// Parses one delivery.
pub fn parse(ctx: &ParseContext, body: &[u8]) -> Result<Vec<CrmEvent>, WebhookError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(WebhookError::Malformed("the body is empty".to_owned()));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let Value::Object(env) = &value else {
        return Err(WebhookError::Shape(
            "a hook must be a JSON object".to_owned(),
        ));
    };
    event(ctx, env)
        .map(|e| vec![e])
        .map_err(|Malformed(why)| WebhookError::Shape(why))
}

fn event(ctx: &ParseContext, env: &Map<String, Value>) -> Result<CrmEvent, Malformed> {
    let org = lenient::id(env, "orgId")?.ok_or_else(|| Malformed("no orgId".to_owned()))?;
    let object = lenient::text(env, "object").ok_or_else(|| Malformed("no object".to_owned()))?;
    let kind = lenient::text(env, "type").ok_or_else(|| Malformed("no type".to_owned()))?;
    if !matches!(kind.as_str(), "create" | "update" | "delete") {
        return Err(Malformed(format!(
            "type {kind:?} is not create, update or delete"
        )));
    }
    let body = |key: &str| {
        lenient::object(env.get(key)).ok_or_else(|| Malformed(format!("no {key} object")))
    };
    match object.as_str() {
        "visit" => {
            let v = body("visit")?;
            if kind == "delete" {
                // Whatever else the body says, the visit is gone; a body that does not read
                // still names it.
                let mut gone = match visit::visit(ctx, &org, v) {
                    Ok(read) => read,
                    Err(_) => visit::visit(ctx, &org, &only_id(v)?)?,
                };
                gone.status = VisitStatus::Deleted;
                gone.needs_refetch = false;
                return Ok(CrmEvent::Visit(gone));
            }
            Ok(CrmEvent::Visit(visit::visit(ctx, &org, v)?))
        }
        "client" => {
            let c = visit::client(ctx, body("client")?)?;
            Ok(CrmEvent::Client(ClientEvent {
                company_id: org,
                external_id: c.external_id,
                phone: c.phone,
                name: c.name,
                deleted: kind == "delete",
                email: c.email,
                birth_date: c.birth_date,
            }))
        }
        "service" | "commodity" => {
            let resource = if env.contains_key("commodity") {
                "commodity"
            } else {
                object.as_str()
            };
            let id = lenient::object(env.get(resource))
                .and_then(|o| lenient::id(o, "id").ok().flatten());
            Ok(CrmEvent::Other(OtherEvent {
                company_id: org,
                resource: resource.to_owned(),
                resource_id: id,
                status: Some(kind),
            }))
        }
        other => Err(Malformed(format!(
            "object {other:?} is not visit, client, service or commodity"
        ))),
    }
}

/// A visit body reduced to its id.
fn only_id(v: &Map<String, Value>) -> Result<Map<String, Value>, Malformed> {
    let mut m = Map::new();
    m.insert("id".to_owned(), Value::String(visit::visit_id(v)?));
    Ok(m)
}
