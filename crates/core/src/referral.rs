//! Referrals: a client invites a friend with her link (`t.me/<bot>?start=r<partner>_<client>`);
//! when the friend's first visit that came is applied, both get the program's bonus.
//!
//! The rules, pinned by the engine's tests:
//!
//! * A referral is recorded when someone new to the salon (no visit that came) joins it through a
//!   client's link and shares her phone. One referrer per client: the first link wins.
//! * No self-referral: not the same client, not the same phone, not the referrer's own chat.
//! * The referrer must have had a visit that came.
//! * The friend's **first visit that came** pays both bonuses (of the program version of that
//!   visit's time), exactly once however often it is delivered. If that visit then ends as one
//!   that did not come (or is deleted), both bonuses are reversed and the friend's next visit
//!   that came qualifies instead.
//! * `monthly_cap`: the most referrals that pay one referrer in a calendar month (the salon's,
//!   of the qualifying visit); a friend's visit over the cap pays nothing, and her next visit
//!   that came, in a later month, may.

use serde::{Deserialize, Serialize};

use crate::model::ClientId;
use crate::money::Points;

/// A program's referral settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferralProgram {
    /// Points for the client who invited.
    pub referrer_points: Points,
    /// Points for the friend.
    pub friend_points: Points,
    /// The most referrals that pay one referrer a month; `None`: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_cap: Option<u32>,
}

impl ReferralProgram {
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.referrer_points.value() < 0 || self.friend_points.value() < 0 {
            return Err("bonuses must not be negative");
        }
        if !self.referrer_points.is_positive() && !self.friend_points.is_positive() {
            return Err("at least one bonus must be more than 0");
        }
        if self.monthly_cap == Some(0) {
            return Err("monthly_cap must be at least 1 (leave it out for no cap)");
        }
        Ok(())
    }
}

/// One client's invitation of another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Referral {
    pub id: i64,
    pub referrer_id: ClientId,
    pub friend_id: ClientId,
    pub created_at_ms: i64,
    /// The friend's visit (`{connection}:{record}`) that pays it, while one does.
    pub record_key: Option<String>,
    /// That visit's time.
    pub qualified_at_ms: Option<i64>,
    /// What was paid for it and is held now.
    pub referrer_points: Points,
    pub friend_points: Points,
    /// Entries posted for it so far (their keys count on).
    pub postings: i64,
}

/// Why a referral was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The salon runs no referral program.
    NoProgram,
    /// The referrer is not a client of the salon.
    UnknownReferrer,
    /// The same client, phone or chat.
    SelfReferral,
    /// The referrer has not had a visit that came.
    ReferrerHasNoVisit,
    /// The friend has had a visit that came: not new to the salon.
    NotNew,
    /// The friend was referred already.
    AlreadyReferred,
}

/// What a client's link has brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ReferralStats {
    /// Friends who joined through it.
    pub invited: i64,
    /// Of them, those whose visit paid the bonus.
    pub qualified: i64,
    /// The points it earned the referrer (held now).
    pub earned: Points,
}

/// The payload of a client's link: `r<partner>_<client>`.
pub fn link_payload(partner: crate::model::PartnerId, client: ClientId) -> String {
    format!("r{partner}_{client}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_that_pays_nobody_is_refused() {
        let mut p = ReferralProgram {
            referrer_points: Points(300),
            friend_points: Points(200),
            monthly_cap: Some(5),
        };
        assert!(p.validate().is_ok());
        p.referrer_points = Points::ZERO;
        p.friend_points = Points::ZERO;
        assert_eq!(p.validate(), Err("at least one bonus must be more than 0"));
        p.friend_points = Points(-1);
        assert_eq!(p.validate(), Err("bonuses must not be negative"));
        p.friend_points = Points(1);
        p.monthly_cap = Some(0);
        assert!(p.validate().is_err());
    }
}
