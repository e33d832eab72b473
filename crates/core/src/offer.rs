//! Personal offers (issue 14, the seed's scenario 4): a reminder that carries a real, bounded
//! benefit — bonus points, or extra cashback on a service the client has not tried — valid until
//! a deadline.
//!
//! The settings ride on a reminder's trigger ([`OfferSetting`], one or more variants tested
//! against each other). When the message is sent the offer becomes a row ([`Offer`]) naming the
//! message; when a visit that qualifies is applied before the deadline, the engine posts the
//! benefit through the ledger once and names the visit; if that visit stops qualifying (flipped
//! to "did not come", edited below the condition) the benefit is taken back, and the offer is
//! live again until its deadline.

use serde::{Deserialize, Serialize};

use crate::engage::Texts;
use crate::event::{VisitEvent, VisitStatus};
use crate::money::{Bps, MoneyError, Points, accrual_points};
use crate::{ClientId, PartnerId};

/// An offer attached to a trigger: how long it stays valid once sent, and its variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferSetting {
    /// Days the offer is valid after the message goes out.
    #[serde(default = "default_valid_days")]
    pub valid_days: u32,
    /// The variants tested against each other (Thompson sampling over their 30-day return
    /// rates); one variant is simply the offer.
    pub variants: Vec<OfferVariant>,
}

fn rub() -> crate::Currency {
    crate::Currency::Rub
}

fn default_valid_days() -> u32 {
    14
}

/// One variant: its name (in reports), its benefit, the least bill that qualifies, and its own
/// text (else the built-in one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferVariant {
    pub name: String,
    pub benefit: Benefit,
    /// A visit qualifies when its bill is at least this much (minor units).
    #[serde(default)]
    pub min_paid_minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Texts>,
}

/// What a qualifying visit earns beyond the program's points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Benefit {
    /// A fixed number of bonus points.
    BonusPoints { points: Points },
    /// `percent` % of what the suggested service cost, in points, at most `max_points`; the
    /// visit must include that service. A client with no suggestion gets none of this variant.
    ServiceCashback { percent: u32, max_points: Points },
}

/// Why an offer setting is refused.
pub fn check(o: &OfferSetting) -> Result<(), String> {
    if o.valid_days == 0 || o.valid_days > 90 {
        return Err("offer.valid_days must be 1–90".into());
    }
    if o.variants.is_empty() || o.variants.len() > 5 {
        return Err("offer.variants: 1 to 5".into());
    }
    let mut names = std::collections::BTreeSet::new();
    for v in &o.variants {
        if v.name.trim().is_empty() || v.name.len() > 40 {
            return Err("offer.variants: a name of 1–40 characters".into());
        }
        if !names.insert(v.name.as_str()) {
            return Err(format!("offer.variants: {:?} is listed twice", v.name));
        }
        if v.min_paid_minor < 0 {
            return Err(format!(
                "offer {:?}: min_paid_minor cannot be negative",
                v.name
            ));
        }
        match &v.benefit {
            Benefit::BonusPoints { points } => {
                if !(1..=100_000).contains(&points.value()) {
                    return Err(format!("offer {:?}: points must be 1–100000", v.name));
                }
            }
            Benefit::ServiceCashback {
                percent,
                max_points,
            } => {
                if !(1..=100).contains(percent) {
                    return Err(format!("offer {:?}: percent must be 1–100", v.name));
                }
                if !(1..=100_000).contains(&max_points.value()) {
                    return Err(format!("offer {:?}: max_points must be 1–100000", v.name));
                }
            }
        }
        if let Some(t) = &v.text
            && (t.ru.trim().is_empty() || t.en.as_ref().is_some_and(|e| e.trim().is_empty()))
        {
            return Err(format!("offer {:?}: a text cannot be empty", v.name));
        }
    }
    Ok(())
}

/// What a sent reminder promised: the variant, its benefit and condition, and what it was made
/// of for this client (the suggested service, her favourite master).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferTerms {
    pub variant: String,
    pub benefit: Benefit,
    #[serde(default)]
    pub min_paid_minor: i64,
    pub valid_days: u32,
    /// The service suggested (one she has not tried that clients like her buy): CRM id, title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<(String, String)>,
    /// Her favourite master (most visits that came in 12 months): CRM staff id, name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<(String, String)>,
    /// Her average bill over those visits (minor units).
    #[serde(default)]
    pub average_minor: i64,
    /// The program's currency, for the least bill in the message.
    #[serde(default = "rub")]
    pub currency: crate::Currency,
    /// The variant's own text, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Texts>,
}

/// An offer as sent: which message made it, until when it is valid, and the visit it was
/// posted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub id: i64,
    pub partner_id: PartnerId,
    pub client_id: ClientId,
    /// The reminder (`engage_sends` row) that carried it.
    pub send_id: i64,
    pub trigger: String,
    pub terms: OfferTerms,
    pub sent_at_ms: i64,
    pub valid_until_ms: i64,
    /// The visit its benefit is posted for (`{connection}:{record}`), while one qualifies.
    pub record_key: Option<String>,
    /// The benefit posted for that visit now.
    pub posted: Points,
    /// Entries posted under it so far (each `offer:{id}:{n}`).
    pub postings: i64,
}

impl Offer {
    /// What `visit` earns under this offer in its current state: nothing unless it came inside
    /// the offer's time and meets its condition. `point_value_minor` is the program's.
    pub fn benefit_for(
        &self,
        visit: &VisitEvent,
        point_value_minor: i64,
        now_ms: i64,
    ) -> Result<Points, MoneyError> {
        let at = visit.visit_at_ms.unwrap_or(now_ms);
        if visit.status != VisitStatus::Came
            || at < self.sent_at_ms
            || at > self.valid_until_ms
            || visit.paid_minor() < self.terms.min_paid_minor
        {
            return Ok(Points::ZERO);
        }
        match &self.terms.benefit {
            Benefit::BonusPoints { points } => Ok(*points),
            Benefit::ServiceCashback {
                percent,
                max_points,
            } => {
                let Some((service, _)) = &self.terms.service else {
                    return Ok(Points::ZERO);
                };
                let rate = Bps::new(i64::from(*percent).saturating_mul(100))?;
                let lines = visit
                    .lines
                    .iter()
                    .filter(|l| &l.item_id == service)
                    .map(|l| (l.paid_minor, rate));
                let points = accrual_points(lines, point_value_minor)?;
                Ok(points.min(*max_points))
            }
        }
    }
}
