//! The operator's commands, by group. Each returns one JSON object (printed as is with
//! `--json`) and has a text rendering beside it.

mod api_keys;
mod bots;
mod catalog;
mod deliveries;
mod desk;
mod doctor;
mod engage;
mod import;
mod import_file;
mod models;
mod privacy;
mod program;
mod setup;
mod sync;
mod users;
mod visits;

pub use api_keys::*;
pub use bots::*;
pub use catalog::*;
pub use deliveries::*;
pub use desk::*;
pub use doctor::*;
pub use engage::*;
pub use import::*;
pub use import_file::*;
pub use models::*;
pub use privacy::*;
pub use program::*;
pub use setup::*;
pub use sync::*;
pub use users::*;
pub use visits::*;

use loyalty_core::{Client, EngineError, PartnerId, Phone, Store};

/// An operator's mistake, reported as such (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

async fn known_partner(store: &dyn Store, partner: i64) -> anyhow::Result<PartnerId> {
    let id = PartnerId(partner);
    if store.partner(id).await?.is_none() {
        return Err(Usage(format!("partner {id} does not exist")).into());
    }
    Ok(id)
}

/// An engine error as the operator sees it: a refused request is a usage error (exit 2), with
/// the engine's words; the store or a CRM failing stays a failure.
fn refused(e: EngineError) -> anyhow::Error {
    if e.is_refusal() {
        Usage(e.to_string()).into()
    } else {
        e.into()
    }
}

fn not_a_client(partner: PartnerId, phone: &Phone) -> anyhow::Error {
    Usage(format!(
        "{} is not a client of partner {partner}",
        phone.masked()
    ))
    .into()
}

/// [`desk_phone`], and the client with that phone.
async fn desk_client(
    store: &dyn Store,
    partner: i64,
    phone: &str,
) -> anyhow::Result<(PartnerId, Phone, Client)> {
    let (partner, phone) = desk_phone(store, partner, phone).await?;
    match store.client_by_phone(partner, &phone).await? {
        Some(client) => Ok((partner, phone, client)),
        None => Err(not_a_client(partner, &phone)),
    }
}

/// A partner that exists and a phone typed at its desk, read in the partner's country.
async fn desk_phone(
    store: &dyn Store,
    partner: i64,
    phone: &str,
) -> anyhow::Result<(PartnerId, Phone)> {
    let id = PartnerId(partner);
    let Some(found) = store.partner(id).await? else {
        return Err(Usage(format!("partner {id} does not exist")).into());
    };
    let country = found.program.country;
    let phone = Phone::parse(phone, country)
        .map_err(|e| Usage(format!("--phone: {e} (read as a number in {country})")))?;
    Ok((id, phone))
}
