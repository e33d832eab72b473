//! Partners (tenants), their loyalty program, clients and CRM connections.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::audit::Plan;
use crate::campaign::{Campaign, CampaignError, Earned};
use crate::engage::{EngageError, Engagement};
use crate::level::{LevelError, Levels};
use crate::money::{Bps, Currency, MoneyError, Points, accrual_points};
use crate::phone::{Country, Phone};
use crate::referral::ReferralProgram;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A salon or a chain of salons: the tenant. Every row in the store belongs to one.
    PartnerId
);
id_type!(
    /// A client of one partner.
    ClientId
);
id_type!(
    /// One CRM account (company / location) connected to a partner.
    ConnectionId
);
id_type!(
    /// A two-phase hold on a client's points.
    HoldId
);
id_type!(
    /// A ledger entry.
    EntryId
);
id_type!(
    /// A reward in a partner's catalog.
    RewardId
);

/// A partner with its loyalty program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    pub id: PartnerId,
    pub name: String,
    pub program: Program,
    /// What the product serves the partner.
    #[serde(default)]
    pub plan: Plan,
}

/// What the partner sets up when it joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPartner {
    pub name: String,
    pub program: Program,
}

/// The rules of a partner's points program. One program per partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// The salon's currency; visits in another currency are rejected.
    pub currency: Currency,
    /// Cashback on the paid amount of a visit's lines that no rule covers.
    pub cashback: Bps,
    /// Visits whose paid total is below this (minor units) earn nothing.
    #[serde(default)]
    pub min_paid_minor: i64,
    /// Services, goods or categories with their own rate; rate 0 excludes them.
    #[serde(default)]
    pub rules: Vec<ItemRule>,
    /// Days after which an accrual expires; `None`: points never expire.
    #[serde(default)]
    pub points_ttl_days: Option<u32>,
    /// The largest share of a bill that points may pay.
    pub max_redeem_share: Bps,
    /// Points granted once when a client joins the program.
    #[serde(default)]
    pub welcome_bonus: Points,
    /// What one point is worth in minor units; 100 = one rouble.
    pub point_value_minor: i64,
    /// Days a redemption code stays usable; unused, its points come back.
    #[serde(default = "default_code_ttl_days")]
    pub code_ttl_days: u32,
    /// Where the salon is: phones typed without a country code are read as this country's
    /// (a connection may name another for a location abroad).
    #[serde(default)]
    pub country: Country,
    /// Levels that raise the cashback and the redemption cap; `None`: one flat program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<Levels>,
    /// Points granted once a year before a client's birthday; `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<BirthdayBonus>,
    /// The refund window: a visit's points become spendable this many days after they are
    /// accrued (0: at once). Until then they are pending: shown, never spent, and the first
    /// taken back when the visit is refunded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending_days: u32,
    /// Time-boxed rules on top of the program (see [`crate::campaign`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub campaigns: Vec<Campaign>,
    /// The most points one visit may earn, campaigns included; `None`: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_points_per_visit: Option<Points>,
    /// A referral program: both sides' bonuses on the friend's first visit; `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<ReferralProgram>,
    /// Reminders and the delivery policy (see [`crate::engage`]); `None`: no marketing message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engage: Option<Engagement>,
    /// The salon's offset from UTC, for the days and hours campaigns run in.
    #[serde(default = "default_utc_offset")]
    pub utc_offset_minutes: i32,
    /// The salon's own rules: when, if, then (see [`crate::custom`]; the Enterprise plan).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_triggers: Vec<crate::custom::CustomTrigger>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Birthday points: granted once a year `days_before` the birthday (in the salon's time), in a
/// lot that expires `valid_days` after it is granted, with a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BirthdayBonus {
    pub points: Points,
    #[serde(default)]
    pub days_before: u32,
    #[serde(default = "default_birthday_days")]
    pub valid_days: u32,
    /// The salon's offset from UTC, for what "today" is there.
    #[serde(default = "default_utc_offset")]
    pub utc_offset_minutes: i32,
}

fn default_birthday_days() -> u32 {
    7
}

fn default_utc_offset() -> i32 {
    180
}

/// One version of a partner's program: every change is a new version, in force from its
/// `effective_from_ms`. A visit is computed with the version in force at the visit's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramVersion {
    pub version: i64,
    pub effective_from_ms: i64,
    pub program: Program,
}

/// What a program's settings get wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Levels(#[from] LevelError),
    #[error("birthday: {0}")]
    Birthday(&'static str),
    #[error("pending_days: {0}")]
    Pending(String),
    #[error(transparent)]
    Campaign(#[from] CampaignError),
    #[error("referral: {0}")]
    Referral(&'static str),
    #[error(transparent)]
    Engage(#[from] EngageError),
    #[error(transparent)]
    Custom(#[from] crate::custom::CustomError),
}

fn default_code_ttl_days() -> u32 {
    90
}

/// A per-item exception to the program's cashback rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRule {
    pub target: RuleTarget,
    pub rate: Bps,
}

/// What an [`ItemRule`] applies to: an item's CRM id, or a category id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum RuleTarget {
    Item(String),
    Category(String),
}

impl Program {
    /// A program with the given cashback and the defaults: RUB, no minimum, no expiry,
    /// points may pay up to half a bill, 1 point = 1 ₽, no welcome bonus, codes last 90 days,
    /// a salon in Russia.
    pub fn with_cashback(cashback: Bps) -> Program {
        Program {
            currency: Currency::Rub,
            cashback,
            min_paid_minor: 0,
            rules: Vec::new(),
            points_ttl_days: None,
            max_redeem_share: Bps::new(5_000).unwrap_or(Bps::FULL),
            welcome_bonus: Points::ZERO,
            point_value_minor: 100,
            code_ttl_days: default_code_ttl_days(),
            country: Country::RU,
            levels: None,
            birthday: None,
            pending_days: 0,
            campaigns: Vec::new(),
            max_points_per_visit: None,
            referral: None,
            engage: None,
            utc_offset_minutes: default_utc_offset(),
            custom_triggers: Vec::new(),
        }
    }

    /// Checks the settings that cannot be expressed by types.
    pub fn validate(&self) -> Result<(), ProgramError> {
        if self.min_paid_minor < 0 {
            return Err(MoneyError::Negative(self.min_paid_minor).into());
        }
        if self.welcome_bonus.value() < 0 {
            return Err(MoneyError::Negative(self.welcome_bonus.value()).into());
        }
        if self.point_value_minor < 1 {
            return Err(MoneyError::BadPointValue(self.point_value_minor).into());
        }
        if let Some(levels) = &self.levels {
            levels.validate()?;
        }
        crate::campaign::validate(self)?;
        if let Some(r) = &self.referral {
            r.validate().map_err(ProgramError::Referral)?;
        }
        if let Some(e) = &self.engage {
            e.validate()?;
        }
        crate::custom::validate(self)?;
        if self.pending_days > 365 {
            return Err(ProgramError::Pending("at most 365".into()));
        }
        if let Some(ttl) = self.points_ttl_days
            && self.pending_days > 0
            && ttl <= self.pending_days
        {
            return Err(ProgramError::Pending(format!(
                "points would expire ({ttl} days) before they become spendable ({} days)",
                self.pending_days
            )));
        }
        if let Some(b) = &self.birthday {
            if !b.points.is_positive() {
                return Err(ProgramError::Birthday("points must be more than 0"));
            }
            if b.valid_days == 0 {
                return Err(ProgramError::Birthday("valid_days must be at least 1"));
            }
            if b.days_before > 60 {
                return Err(ProgramError::Birthday("days_before must be at most 60"));
            }
            if !(-720..=840).contains(&b.utc_offset_minutes) {
                return Err(ProgramError::Birthday(
                    "utc_offset_minutes must be within -720..=840",
                ));
            }
        }
        Ok(())
    }

    /// The level a client with the stored level `stored` stands at, when the program has
    /// levels: its position and name.
    pub fn level_of(&self, stored: Option<&str>) -> Option<(usize, &str)> {
        let levels = self.levels.as_ref()?;
        let i = levels.standing(stored);
        levels.tiers.get(i).map(|t| (i, t.name.as_str()))
    }

    /// The program as it applies at the level named `level`: that level's cashback and
    /// redemption cap in place of the program's own. Unchanged without levels or for a name
    /// the program does not have (the base level's terms then apply).
    pub fn at_level(&self, level: Option<&str>) -> Program {
        let mut p = self.clone();
        if let Some(levels) = &self.levels
            && let Some(tier) = levels.tiers.get(levels.standing(level))
        {
            p.cashback = tier.cashback;
            p.max_redeem_share = tier.max_redeem_share;
        }
        p
    }

    /// The rate for one line: a rule for the item wins over a rule for its category, which wins
    /// over the program's cashback.
    pub fn rate_for(&self, item_id: &str, category_id: Option<&str>) -> Bps {
        let by_item = self.rules.iter().find(|r| match &r.target {
            RuleTarget::Item(id) => id == item_id,
            RuleTarget::Category(_) => false,
        });
        let by_category = || {
            self.rules.iter().find(|r| match (&r.target, category_id) {
                (RuleTarget::Category(c), Some(cat)) => c == cat,
                _ => false,
            })
        };
        by_item
            .or_else(by_category)
            .map(|r| r.rate)
            .unwrap_or(self.cashback)
    }

    /// The smallest bill (minor units) a money certificate worth `value_minor` may be spent
    /// on: points pay at most `max_redeem_share` of a bill, so the bill must be at least
    /// `value × 10 000 / share`, rounded up. `None` when the program lets points pay no part
    /// of a bill.
    pub fn min_bill_for(&self, value_minor: i64) -> Option<i64> {
        let share = i128::from(self.max_redeem_share.value());
        if share == 0 {
            return None;
        }
        let value = i128::from(value_minor.max(0));
        i64::try_from((value * 10_000 + share - 1) / share).ok()
    }

    /// Points a visit should have earned in total, given its current state and what it was
    /// first applied with: the program's points ([`Program::target_accrual`]) plus its
    /// campaigns' and its custom triggers' (for a client at `level`, the record's), within
    /// `max_points_per_visit`.
    pub fn target_with(
        &self,
        visit: &crate::event::VisitEvent,
        earned: Option<&Earned>,
        level: Option<&str>,
    ) -> Result<Points, MoneyError> {
        let mut target = self.target_accrual(visit)?;
        if let Some(earned) = earned {
            target += earned.campaign_points(self, visit)?;
            if !self.custom_triggers.is_empty() {
                target += crate::custom::visit_points(self, visit, earned.context(level))?;
            }
        }
        Ok(match self.max_points_per_visit {
            Some(cap) => target.min(cap),
            None => target,
        })
    }

    /// Points a visit earns by the program's rates alone, given its current state.
    ///
    /// The part of the bill paid with certificates or loyalty points
    /// ([`crate::event::LoyaltyPaid::Minor`]) earns nothing: the visit's accrual is scaled by
    /// the share paid otherwise, `accrual × (paid − loyalty) / paid`, rounded down once. The
    /// minimum bill (`min_paid_minor`) applies to that rest too.
    pub fn target_accrual(&self, visit: &crate::event::VisitEvent) -> Result<Points, MoneyError> {
        if visit.status != crate::event::VisitStatus::Came {
            return Ok(Points::ZERO);
        }
        let paid: i64 = visit
            .lines
            .iter()
            .try_fold(0i64, |acc, l| acc.checked_add(l.paid_minor))
            .ok_or(MoneyError::Overflow)?;
        let loyalty = match visit.loyalty_paid {
            crate::event::LoyaltyPaid::Minor(minor) if minor < 0 => {
                return Err(MoneyError::Negative(minor));
            }
            crate::event::LoyaltyPaid::Minor(minor) => minor.min(paid),
            _ => 0,
        };
        let rest = paid - loyalty;
        if rest < self.min_paid_minor {
            return Ok(Points::ZERO);
        }
        let full = accrual_points(
            visit.lines.iter().map(|l| {
                (
                    l.paid_minor,
                    self.rate_for(&l.item_id, l.category_id.as_deref()),
                )
            }),
            self.point_value_minor,
        )?;
        if loyalty == 0 {
            return Ok(full);
        }
        let scaled = i128::from(full.value()) * i128::from(rest) / i128::from(paid);
        i64::try_from(scaled)
            .map(Points)
            .map_err(|_| MoneyError::Overflow)
    }
}

/// A client of a partner. `telegram_chat_id` is set once the client shared their contact with
/// the bot; a client created from a CRM event without one is "virtual" until then. The name,
/// e-mail and birth date are the CRM's (it owns what the salon types there); the loyalty state
/// is ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub id: ClientId,
    pub partner_id: PartnerId,
    pub phone: Phone,
    pub name: Option<String>,
    pub telegram_chat_id: Option<i64>,
    /// The client asked not to get notifications.
    pub notifications_off: bool,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub birth_date: Option<BirthDate>,
    /// The client's level by name (`None`: the program's first), when the program has levels.
    #[serde(default)]
    pub level: Option<String>,
    /// A level staff set by hand: she never stands below it.
    #[serde(default)]
    pub level_floor: Option<String>,
    /// Since when the level holds: reached, or confirmed by the last review.
    #[serde(default)]
    pub level_since_ms: Option<i64>,
}

/// A birthday: day and month, and the year when the salon knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BirthDate {
    pub year: Option<i32>,
    pub month: u8,
    pub day: u8,
}

impl BirthDate {
    /// `YYYY-MM-DD` (a year of `0000` or `1900` and earlier is read as unknown, as CRMs store a
    /// birthday without a year) or `DD.MM.YYYY`; `None` for anything that is not a real date
    /// (`0000-00-00`, `31.02.1990`, empty).
    pub fn parse(text: &str) -> Option<BirthDate> {
        let t = text.trim();
        let (year, month, day) = if let Some((y, rest)) = t.split_once('-') {
            let (m, d) = rest.split_once('-')?;
            (y, m, d.get(..2).unwrap_or(d))
        } else {
            let mut parts = t.split('.');
            let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
            (y, m, d)
        };
        let year: i32 = year.parse().ok()?;
        let month: u8 = month.parse().ok()?;
        let day: u8 = day.parse().ok()?;
        let year = (year > 1900).then_some(year);
        let longest = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 => match year {
                Some(y) if !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) => 28,
                _ => 29,
            },
            _ => return None,
        };
        (1..=longest)
            .contains(&day)
            .then_some(BirthDate { year, month, day })
    }

    /// `YYYY-MM-DD`, or `--MM-DD` without a year.
    pub fn to_iso(&self) -> String {
        match self.year {
            Some(y) => format!("{y:04}-{:02}-{:02}", self.month, self.day),
            None => format!("--{:02}-{:02}", self.month, self.day),
        }
    }

    /// Reads what [`BirthDate::to_iso`] wrote.
    pub fn from_iso(text: &str) -> Option<BirthDate> {
        match text.strip_prefix("--") {
            Some(md) => {
                BirthDate::parse(&format!("2000-{md}")).map(|b| BirthDate { year: None, ..b })
            }
            None => BirthDate::parse(text),
        }
    }
}

/// The CRMs Loyalty Bridge connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrmKind {
    Yclients,
    Altegio,
    Arnica,
    Dikidi,
    Beautypro,
    /// No CRM: the partner's own records — visits entered at the desk (`visit add`, the bot's
    /// `/visit`) and imported from files. One per partner, made on first use.
    Desk,
}

impl CrmKind {
    /// The CRMs a connection can be added for.
    pub const ALL: [CrmKind; 5] = [
        CrmKind::Yclients,
        CrmKind::Altegio,
        CrmKind::Arnica,
        CrmKind::Dikidi,
        CrmKind::Beautypro,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CrmKind::Yclients => "yclients",
            CrmKind::Altegio => "altegio",
            CrmKind::Arnica => "arnica",
            CrmKind::Dikidi => "dikidi",
            CrmKind::Beautypro => "beautypro",
            CrmKind::Desk => "desk",
        }
    }

    /// Whether the CRM itself reports visits (webhooks or a poller): a desk entry for such a
    /// partner would count one visit twice.
    pub fn reports_visits(self) -> bool {
        matches!(
            self,
            CrmKind::Yclients | CrmKind::Altegio | CrmKind::Arnica | CrmKind::Beautypro
        )
    }
}

/// A CRM name that is not one of [`CrmKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CRM {0:?} (known: yclients, altegio, arnica, dikidi, beautypro)")]
pub struct UnknownCrm(pub String);

impl FromStr for CrmKind {
    type Err = UnknownCrm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CrmKind::ALL
            .into_iter()
            .chain([CrmKind::Desk])
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownCrm(s.to_owned()))
    }
}

impl fmt::Display for CrmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A partner's connection to one CRM company/location.
///
/// Credentials are not stored here: `credentials_ref` names where the gateway keeps them, so a
/// connection can be printed and logged. `webhook_secret` authenticates the CRM's webhooks (the
/// CRMs do not sign them); it is never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmConnection {
    pub id: ConnectionId,
    pub partner_id: PartnerId,
    pub kind: CrmKind,
    pub company_id: String,
    pub credentials_ref: String,
    pub webhook_secret: String,
    /// Visits before this time (Unix ms) earn no points, whatever brings them: the history
    /// import sets it so the past is history only. `None`: every visit earns.
    pub points_since_ms: Option<i64>,
}

impl CrmConnection {
    /// Whether a visit at `visit_at_ms` is before the points boundary (and so earns nothing).
    pub fn before_points(&self, visit_at_ms: Option<i64>) -> bool {
        matches!((self.points_since_ms, visit_at_ms), (Some(since), Some(at)) if at < since)
    }
}

impl fmt::Debug for CrmConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrmConnection")
            .field("id", &self.id)
            .field("partner_id", &self.partner_id)
            .field("kind", &self.kind)
            .field("company_id", &self.company_id)
            .field("credentials_ref", &self.credentials_ref)
            .field("webhook_secret", &"***")
            .field("points_since_ms", &self.points_since_ms)
            .finish()
    }
}

/// What is needed to create a [`CrmConnection`].
#[derive(Clone, PartialEq, Eq)]
pub struct NewConnection {
    pub partner_id: PartnerId,
    pub kind: CrmKind,
    pub company_id: String,
    pub credentials_ref: String,
    pub webhook_secret: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{VisitEvent, VisitLine, VisitStatus};

    fn visit(status: VisitStatus, lines: Vec<VisitLine>) -> VisitEvent {
        VisitEvent {
            record_id: "1".into(),
            company_id: "42".into(),
            version: None,
            status,
            client: None,
            currency: Currency::Rub,
            lines,
            staff_id: None,
            staff_name: None,
            visit_at_ms: None,
            needs_refetch: false,
            loyalty_paid: Default::default(),
        }
    }

    fn line(item: &str, category: Option<&str>, paid: i64) -> VisitLine {
        VisitLine {
            item_id: item.into(),
            category_id: category.map(Into::into),
            kind: crate::event::LineKind::Service,
            title: String::new(),
            paid_minor: paid,
        }
    }

    #[test]
    fn rules_item_over_category_over_default() {
        let mut p = Program::with_cashback(Bps::new(500).unwrap());
        p.rules = vec![
            ItemRule {
                target: RuleTarget::Category("hair".into()),
                rate: Bps::new(1_000).unwrap(),
            },
            ItemRule {
                target: RuleTarget::Item("777".into()),
                rate: Bps::ZERO,
            },
        ];
        assert_eq!(p.rate_for("1", None).value(), 500);
        assert_eq!(p.rate_for("1", Some("hair")).value(), 1_000);
        assert_eq!(p.rate_for("777", Some("hair")).value(), 0);

        let v = visit(
            VisitStatus::Came,
            vec![
                line("1", None, 100_000),           // 5 % → 50
                line("2", Some("hair"), 100_000),   // 10 % → 100
                line("777", Some("hair"), 500_000), // excluded
            ],
        );
        assert_eq!(p.target_accrual(&v).unwrap(), Points(150));
    }

    #[test]
    fn only_came_visits_above_minimum_earn() {
        let mut p = Program::with_cashback(Bps::new(500).unwrap());
        p.min_paid_minor = 100_000;
        for s in [
            VisitStatus::Waiting,
            VisitStatus::Confirmed,
            VisitStatus::NoShow,
            VisitStatus::Deleted,
        ] {
            let v = visit(s, vec![line("1", None, 400_000)]);
            assert_eq!(p.target_accrual(&v).unwrap(), Points::ZERO, "{s:?}");
        }
        let below = visit(VisitStatus::Came, vec![line("1", None, 99_999)]);
        assert_eq!(p.target_accrual(&below).unwrap(), Points::ZERO);
        let at = visit(VisitStatus::Came, vec![line("1", None, 100_000)]);
        assert_eq!(p.target_accrual(&at).unwrap(), Points(50));
    }

    #[test]
    fn a_certificate_needs_a_bill_its_share_allows() {
        let mut p = Program::with_cashback(Bps::new(500).unwrap());
        // Half a bill: 1 500 ₽ needs 3 000 ₽.
        assert_eq!(p.min_bill_for(150_000), Some(300_000));
        // Rounded up: 1 kopeck at 30 % needs 4 (3 would let it pay 33 %).
        p.max_redeem_share = Bps::new(3_000).unwrap();
        assert_eq!(p.min_bill_for(1), Some(4));
        assert_eq!(p.min_bill_for(100_000), Some(333_334));
        p.max_redeem_share = Bps::FULL;
        assert_eq!(p.min_bill_for(150_000), Some(150_000));
        p.max_redeem_share = Bps::ZERO;
        assert_eq!(p.min_bill_for(150_000), None);
        // 0.01 % of a bill: the largest value still has an answer in i64 or none at all.
        p.max_redeem_share = Bps::new(1).unwrap();
        assert_eq!(p.min_bill_for(i64::MAX), None);
        assert_eq!(p.min_bill_for(1_000), Some(10_000_000));
    }

    #[test]
    fn the_part_paid_with_loyalty_earns_nothing() {
        use crate::event::LoyaltyPaid;
        let mut p = Program::with_cashback(Bps::new(500).unwrap());
        p.rules = vec![ItemRule {
            target: RuleTarget::Item("2".into()),
            rate: Bps::new(1_000).unwrap(),
        }];
        // 3 000 ₽ at 5 % and 1 000 ₽ at 10 %: 250 points on the whole bill.
        let mut v = visit(
            VisitStatus::Came,
            vec![line("1", None, 300_000), line("2", None, 100_000)],
        );
        assert_eq!(p.target_accrual(&v).unwrap(), Points(250));
        // A quarter paid with a certificate: three quarters of it, rounded down once.
        v.loyalty_paid = LoyaltyPaid::Minor(100_000);
        assert_eq!(p.target_accrual(&v).unwrap(), Points(187));
        // Reported, but nothing paid that way; or not reported at all; or still to be asked.
        for nothing in [
            LoyaltyPaid::Minor(0),
            LoyaltyPaid::NotReported,
            LoyaltyPaid::Ask("8263004".into()),
        ] {
            v.loyalty_paid = nothing;
            assert_eq!(p.target_accrual(&v).unwrap(), Points(250));
        }
        // All of it (or, misreported, more than all of it) paid with points: nothing.
        for all in [400_000, 900_000] {
            v.loyalty_paid = LoyaltyPaid::Minor(all);
            assert_eq!(p.target_accrual(&v).unwrap(), Points::ZERO);
        }
        // The minimum bill counts what was paid otherwise.
        p.min_paid_minor = 200_000;
        v.loyalty_paid = LoyaltyPaid::Minor(250_000);
        assert_eq!(p.target_accrual(&v).unwrap(), Points::ZERO);
        v.loyalty_paid = LoyaltyPaid::Minor(-1);
        assert_eq!(p.target_accrual(&v), Err(MoneyError::Negative(-1)));
    }

    #[test]
    fn program_validation_and_strict_config() {
        let mut p = Program::with_cashback(Bps::new(500).unwrap());
        assert!(p.validate().is_ok());
        p.point_value_minor = 0;
        assert_eq!(p.validate(), Err(MoneyError::BadPointValue(0).into()));
        let json = r#"{"currency":"RUB","cashback":500,"max_redeem_share":5000,
                       "point_value_minor":100,"cashbak":3}"#;
        assert!(
            serde_json::from_str::<Program>(json).is_err(),
            "typos are rejected"
        );
        let json =
            r#"{"currency":"RUB","cashback":500,"max_redeem_share":5000,"point_value_minor":100}"#;
        assert_eq!(
            serde_json::from_str::<Program>(json).unwrap(),
            Program::with_cashback(Bps::new(500).unwrap())
        );
    }

    #[test]
    fn birth_dates_as_crms_write_them() {
        let d = |y, m, day| BirthDate {
            year: y,
            month: m,
            day,
        };
        assert_eq!(BirthDate::parse("1990-05-17"), Some(d(Some(1990), 5, 17)));
        assert_eq!(BirthDate::parse("17.05.1990"), Some(d(Some(1990), 5, 17)));
        assert_eq!(BirthDate::parse("0000-05-17"), Some(d(None, 5, 17)));
        assert_eq!(
            BirthDate::parse("1990-05-17 00:00:00"),
            Some(d(Some(1990), 5, 17))
        );
        assert_eq!(BirthDate::parse("0000-02-29"), Some(d(None, 2, 29)));
        for bad in [
            "",
            "0000-00-00",
            "1990-02-29",
            "31.02.1990",
            "1990-13-01",
            "soon",
        ] {
            assert_eq!(BirthDate::parse(bad), None, "{bad}");
        }
        for b in [d(Some(1990), 5, 17), d(None, 2, 29)] {
            assert_eq!(BirthDate::from_iso(&b.to_iso()), Some(b));
        }
        assert_eq!(d(None, 2, 29).to_iso(), "--02-29");
    }

    #[test]
    fn crm_kind_parse_and_debug_hides_secret() {
        assert_eq!("YClients".parse::<CrmKind>().unwrap(), CrmKind::Yclients);
        assert_eq!("amo".parse::<CrmKind>(), Err(UnknownCrm("amo".to_owned())));
        let c = CrmConnection {
            id: ConnectionId(1),
            partner_id: PartnerId(1),
            kind: CrmKind::Yclients,
            company_id: "42".into(),
            credentials_ref: "env:YC".into(),
            webhook_secret: "s3cr3t-value".into(),
            points_since_ms: None,
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
