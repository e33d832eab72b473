//! The program and levels: `program show|set`, `client level`.

use std::io::Read;

use loyalty_core::audit::Actor;
use loyalty_core::custom::check_plan;
use loyalty_core::{Bps, Clock, LoyaltyEngine, PartnerId, Program, ProgramVersion, SystemClock};
use serde_json::{Value, json};

use super::{Usage, desk_client, known_partner, refused};

/// `program show`: the program in force (with `versions`, every version).
pub async fn program_show(
    store: &dyn loyalty_core::Store,
    partner: i64,
    versions: bool,
) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let all = store.program_versions(partner).await?;
    let Some(current) = all.last() else {
        return Err(Usage(format!("partner {partner} has no program")).into());
    };
    let mut out = version_json(current);
    out["partner_id"] = json!(partner);
    if versions {
        out["versions"] = Value::Array(all.iter().map(version_json).collect());
    }
    Ok(out)
}

fn version_json(v: &ProgramVersion) -> Value {
    json!({
        "version": v.version,
        "effective_from_ms": v.effective_from_ms,
        "program": v.program,
    })
}

/// The text form is the program alone, as `program set --file` reads it back.
pub fn program_text(v: &Value) -> String {
    let program = serde_json::to_string_pretty(&v["program"]).unwrap_or_default();
    match v["versions"].as_array() {
        None => program,
        Some(all) => {
            let lines: Vec<String> = all
                .iter()
                .map(|x| {
                    format!(
                        "v{} in force from {}",
                        x["version"],
                        day(x["effective_from_ms"].as_i64().unwrap_or_default())
                    )
                })
                .collect();
            format!("{}\n{program}", lines.join("\n"))
        }
    }
}

/// `program set`: the whole program from a JSON file (`-`: standard input), checked, becomes a
/// new version in force from now. Visits before now keep the version of their time.
pub async fn program_set(
    store: &dyn loyalty_core::Store,
    partner: i64,
    file: &str,
    actor: &Actor,
) -> anyhow::Result<Value> {
    let id = PartnerId(partner);
    let Some(found) = store.partner(id).await? else {
        return Err(Usage(format!("partner {id} does not exist")).into());
    };
    let partner = id;
    let text = read_input(file)?;
    let program: Program =
        serde_json::from_str(&text).map_err(|e| Usage(format!("program in {file}: {e}")))?;
    program
        .validate()
        .map_err(|e| Usage(format!("invalid program: {e}")))?;
    // The partner's row holds its program in force: the rules it may keep below Enterprise.
    check_plan(partner, found.plan, &program, &found.program).map_err(|e| Usage(e.to_string()))?;
    let v = store
        .set_program(partner, &program, SystemClock.now_ms(), actor)
        .await?;
    let mut out = version_json(&v);
    out["partner_id"] = json!(partner);
    Ok(out)
}

pub fn program_set_text(v: &Value) -> String {
    format!(
        "Partner {}: program v{} in force from {}",
        v["partner_id"],
        v["version"],
        day(v["effective_from_ms"].as_i64().unwrap_or_default())
    )
}

fn read_input(file: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Usage(format!("reading the program from standard input: {e}")))?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| Usage(format!("reading the program from {file}: {e}")))?;
    }
    Ok(text)
}

/// What `client level` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelSet {
    /// Only show it.
    Show,
    /// Set a floor by hand.
    Floor(String),
    /// Remove the floor.
    Unset,
}

/// `client level`: the client's level, progress and changes; `--set` puts a floor by hand.
pub async fn client_level(
    engine: &LoyaltyEngine,
    partner: i64,
    phone: &str,
    set: LevelSet,
) -> anyhow::Result<Value> {
    let store = engine.store();
    let (partner, phone, mut client) = desk_client(store.as_ref(), partner, phone).await?;
    let floor = match &set {
        LevelSet::Show => None,
        LevelSet::Floor(name) => Some(Some(name.as_str())),
        LevelSet::Unset => Some(None),
    };
    if let Some(floor) = floor {
        client = engine
            .set_client_level(partner, client.id, floor)
            .await
            .map_err(refused)?;
    }
    let Some(view) = engine.client_level(partner, &client).await? else {
        return Err(Usage(format!(
            "partner {partner}'s program has no levels (see `program set`)"
        ))
        .into());
    };
    let mut out = json!(view);
    out["changes"] = json!(store.level_changes(partner, client.id).await?);
    out["phone"] = json!(phone.masked());
    out["client_id"] = json!(client.id);
    Ok(out)
}

pub fn level_text(v: &Value) -> String {
    let p = &v["progress"];
    let unit = |n: i64| match p["measure"].as_str() {
        Some("paid") => format!("{}.{:02}", n / 100, n % 100),
        _ => n.to_string(),
    };
    let what = match p["measure"].as_str() {
        Some("paid") => "paid",
        _ => "visits",
    };
    let mut out = format!(
        "{}: {} ({} cashback, points pay up to {} of a bill); {} {}",
        v["phone"].as_str().unwrap_or_default(),
        p["level"].as_str().unwrap_or_default(),
        bps(&p["cashback"]),
        bps(&p["max_redeem_share"]),
        unit(p["value"].as_i64().unwrap_or_default()),
        what,
    );
    if let Some(next) = p["next"].as_array() {
        out.push_str(&format!(
            "; {} after {} more",
            next.first().and_then(Value::as_str).unwrap_or_default(),
            unit(next.get(1).and_then(Value::as_i64).unwrap_or_default())
        ));
    }
    if let Some(floor) = v["floor"].as_str() {
        out.push_str(&format!("\nset by hand: never below {floor}"));
    }
    if let Some(at) = v["review_at_ms"].as_i64() {
        out.push_str(&format!("\nreviewed on {}", day(at)));
    }
    for c in v["changes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  {}  {} -> {}  ({}{})",
            day(c["at_ms"].as_i64().unwrap_or_default()),
            c["from"].as_str().unwrap_or("first level"),
            c["to"].as_str().unwrap_or("first level"),
            c["reason"].as_str().unwrap_or_default(),
            c["actor"]
                .as_str()
                .map(|a| format!(", by {a}"))
                .unwrap_or_default()
        ));
    }
    out
}

/// A rate as `Bps` prints it (`7%`, `7.50%`).
fn bps(v: &Value) -> String {
    serde_json::from_value::<Bps>(v.clone())
        .map(|b| b.to_string())
        .unwrap_or_default()
}

/// `YYYY-MM-DD` (UTC) of a time in ms.
fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Who the CLI records as having made a change: `--actor`, else the operator's user name.
pub fn actor(explicit: Option<String>) -> Actor {
    let name = explicit
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "operator".to_owned());
    Actor::new(name, "cli")
}
