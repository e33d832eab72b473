//! Repairs of stored data that older rules read wrong: `doctor phones`.
//!
//! Before phones were read in the salon's country, a hand-written reader turned every domestic
//! form it did not know into a +7 number: a Belarusian `8 029 123-45-67` became `+70291234567`,
//! a number that cannot exist. [`phones`] re-reads each client's stored number: a number
//! libphonenumber finds valid stays as it is; an invalid one is read again from the forms the
//! old reader could have been given (for `+7XXXXXXXXXX`: `8XXXXXXXXXX` and `XXXXXXXXXX`, typed
//! in the partner's country). Exactly one valid reading is a correction; none leaves the number
//! listed as invalid, with why. Applying a correction moves the client to the corrected number
//! only when no other client of the partner holds it: two clients who are one person are
//! listed for the operator, never merged silently. The ledger is not touched.

use async_trait::async_trait;
use serde::Serialize;

use crate::model::{ClientId, PartnerId};
use crate::phone::{Country, Phone, PhoneError};
use crate::store::{Store, StoreError};

/// What `doctor phones` needs of the store, beside [`Store`].
#[async_trait]
pub trait PhoneStore: Send + Sync {
    /// Every client of the partner with its phone exactly as stored, by client id.
    async fn stored_phones(
        &self,
        partner: PartnerId,
    ) -> Result<Vec<(ClientId, String)>, StoreError>;

    /// Moves the client from `from` to `to` in one transaction, unless another client of the
    /// partner holds `to` (or the client no longer has `from`). The client is then linked to
    /// the Telegram chat that shared `to`, if any, as a client created with it would be.
    async fn move_phone(
        &self,
        partner: PartnerId,
        client: ClientId,
        from: &str,
        to: &Phone,
    ) -> Result<PhoneMove, StoreError>;
}

/// How a [`PhoneStore::move_phone`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneMove {
    Moved,
    /// Another client of the partner has that number.
    Taken {
        holder: ClientId,
    },
    /// The client's number is no longer the one read.
    Stale,
}

/// What a stored number reads as now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reread {
    /// Valid as stored.
    Unchanged,
    /// The number the client meant.
    Corrected(Phone),
    /// No valid reading in the country.
    Invalid(PhoneError),
}

/// Reads a stored number again with `country` (see the module documentation).
pub fn reread(stored: &str, country: Country) -> Reread {
    let phone = match Phone::from_e164(stored) {
        Ok(p) => p,
        Err(e) => return Reread::Invalid(e),
    };
    let why = match phone.check() {
        Ok(()) => return Reread::Unchanged,
        Err(e) => e,
    };
    let mut readings: Vec<Phone> = old_inputs(&phone)
        .iter()
        .filter_map(|typed| Phone::parse(typed, country).ok())
        .collect();
    readings.dedup();
    match readings.as_slice() {
        [one] => Reread::Corrected(one.clone()),
        _ => Reread::Invalid(why),
    }
}

/// The forms the old reader turned into this number: it read 11 digits starting with 8, and 10
/// digits starting with 3, 4, 7, 8 or 9, as +7 numbers; everything else it kept as typed.
fn old_inputs(phone: &Phone) -> Vec<String> {
    match phone.digits().strip_prefix('7') {
        Some(national) if national.len() == 10 => vec![format!("8{national}"), national.to_owned()],
        _ => Vec::new(),
    }
}

/// One stored number that is not as it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneFinding {
    pub partner_id: PartnerId,
    pub client_id: ClientId,
    /// The number as stored.
    pub stored: String,
    /// The country it was read in.
    pub country: Country,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// What was found, and what was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The number reads as `to`; `--apply` would move the client there.
    WouldChange { to: Phone },
    /// The client was moved to `to`.
    Changed { to: Phone },
    /// The number reads as `to`, which another client of the partner holds: possibly one
    /// person with two books. Left for the operator.
    Collision { to: Phone, holder: ClientId },
    /// The number changed while the doctor ran; run it again.
    Skipped { to: Phone },
    /// No valid reading: the reason, and its short name.
    Invalid { reason: String, kind: &'static str },
}

/// The result of a pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PhoneReport {
    pub partners: usize,
    /// Stored numbers read.
    pub checked: usize,
    /// Numbers that are not as they should be, by partner and client.
    pub findings: Vec<PhoneFinding>,
}

impl PhoneReport {
    /// How many findings have this verdict (`would_change`, `changed`, `collision`,
    /// `skipped`, `invalid`).
    pub fn count(&self, verdict: &str) -> usize {
        self.findings
            .iter()
            .filter(|f| f.verdict.name() == verdict)
            .count()
    }
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::WouldChange { .. } => "would_change",
            Verdict::Changed { .. } => "changed",
            Verdict::Collision { .. } => "collision",
            Verdict::Skipped { .. } => "skipped",
            Verdict::Invalid { .. } => "invalid",
        }
    }
}

/// Re-reads the stored phones of one partner (or all), each in its partner's country; with
/// `apply`, moves the clients whose corrected number nobody else holds.
pub async fn phones<S: Store + PhoneStore + ?Sized>(
    store: &S,
    partner: Option<PartnerId>,
    apply: bool,
) -> Result<PhoneReport, StoreError> {
    let partners = match partner {
        Some(p) => vec![p],
        None => store.partner_ids().await?,
    };
    let mut report = PhoneReport {
        partners: partners.len(),
        ..PhoneReport::default()
    };
    for partner_id in partners {
        let Some(partner) = store.partner(partner_id).await? else {
            return Err(StoreError::NotFound(format!("partner {partner_id}")));
        };
        let country = partner.program.country;
        for (client_id, stored) in store.stored_phones(partner_id).await? {
            report.checked += 1;
            let verdict = match reread(&stored, country) {
                Reread::Unchanged => continue,
                Reread::Invalid(e) => Verdict::Invalid {
                    reason: e.to_string(),
                    kind: e.kind(),
                },
                Reread::Corrected(to) => {
                    correct(store, partner_id, client_id, &stored, to, apply).await?
                }
            };
            report.findings.push(PhoneFinding {
                partner_id,
                client_id,
                stored,
                country,
                verdict,
            });
        }
    }
    Ok(report)
}

async fn correct<S: Store + PhoneStore + ?Sized>(
    store: &S,
    partner: PartnerId,
    client: ClientId,
    stored: &str,
    to: Phone,
    apply: bool,
) -> Result<Verdict, StoreError> {
    if !apply {
        return Ok(match store.client_by_phone(partner, &to).await? {
            Some(holder) if holder.id != client => Verdict::Collision {
                to,
                holder: holder.id,
            },
            _ => Verdict::WouldChange { to },
        });
    }
    Ok(
        match store.move_phone(partner, client, stored, &to).await? {
            PhoneMove::Moved => Verdict::Changed { to },
            PhoneMove::Taken { holder } => Verdict::Collision { to, holder },
            PhoneMove::Stale => Verdict::Skipped { to },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn country(c: &str) -> Country {
        Country::parse(c).unwrap()
    }

    fn corrected(stored: &str, c: &str) -> String {
        match reread(stored, country(c)) {
            Reread::Corrected(p) => p.as_str().to_owned(),
            other => panic!("{stored} in {c}: {other:?}"),
        }
    }

    #[test]
    fn what_the_old_reader_made_of_domestic_forms_is_read_again() {
        // `8 029 123-45-67` typed at a Belarusian salon.
        assert_eq!(corrected("+70291234567", "BY"), "+375291234567");
        // `8 017 …`, a Minsk landline.
        assert_eq!(corrected("+70171234567", "BY"), "+375171234567");
        // `8 067 …`, a Ukrainian mobile typed with the old trunk 8.
        assert_eq!(corrected("+70671234567", "UA"), "+380671234567");
    }

    #[test]
    fn valid_numbers_stay_and_impossible_ones_are_named() {
        assert_eq!(reread("+79161234567", country("BY")), Reread::Unchanged);
        assert_eq!(reread("+375291234567", Country::RU), Reread::Unchanged);
        assert_eq!(
            reread("+71234567890", Country::RU),
            Reread::Invalid(PhoneError::NotInUse { calling_code: 7 })
        );
        // At a Russian salon the same wrong number has no other reading.
        assert!(matches!(
            reread("+70291234567", Country::RU),
            Reread::Invalid(_)
        ));
        assert_eq!(
            reread("79161234567", Country::RU),
            Reread::Invalid(PhoneError::NotE164)
        );
    }
}
