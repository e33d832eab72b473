//! Birthday points: once a year, `days_before` a client's birthday in the salon's time, in a lot
//! that expires `valid_days` later, with a message. The key `birthday:{client}:{year}` (the year
//! of the birthday it is for) makes a grant happen once, on any number of passes and instances;
//! the salon's birthday triggers fire with it, under the same key.

use super::DAY_MS;
use super::custom::fire_event;
use super::posting::{client_of, credit_until, notify, program_of};
use crate::custom::When;
use crate::ledger::{Account, EntryKind, NewEntry};
use crate::model::BirthdayBonus;
use crate::outbox::Notification;
use crate::store::CardUpdate;
use crate::{BirthDate, Client, ClientId, EngineError, LoyaltyEngine, PartnerId, Posting, StoreTx};

/// What one pass of birthday grants did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BirthdayPass {
    pub granted: usize,
    /// Partners (or clients) that failed, with why; tried again on the next pass.
    pub failed: Vec<(PartnerId, String)>,
}

/// The birthdays a grant made today is for: today and the `days_before` days after it (salon
/// time), each with its year. A 29 February birthday is kept on the 28th in other years.
pub fn birthdays_due(now_ms: i64, b: &BirthdayBonus) -> Vec<(i32, u8, u8)> {
    let local = now_ms.saturating_add(i64::from(b.utc_offset_minutes) * 60_000);
    let Some(today) = chrono::DateTime::from_timestamp_millis(local).map(|t| t.date_naive()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for k in 0..=b.days_before {
        let Some(day) = today.checked_add_days(chrono::Days::new(u64::from(k))) else {
            continue;
        };
        use chrono::Datelike;
        let (y, m, d) = (day.year(), day.month() as u8, day.day() as u8);
        out.push((y, m, d));
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        if (m, d) == (2, 28) && !leap {
            out.push((y, 2, 29));
        }
    }
    out
}

impl LoyaltyEngine {
    /// Grants the birthday points due today at `partner`: each client whose birthday is within
    /// the program's `days_before`, once for that birthday.
    pub async fn grant_birthdays(&self, partner: PartnerId) -> Result<BirthdayPass, EngineError> {
        let program = self.program(partner).await?;
        let Some(bonus) = &program.birthday else {
            return Ok(BirthdayPass::default());
        };
        let due = birthdays_due(self.clock.now_ms(), bonus);
        let days: Vec<(u8, u8)> = due.iter().map(|&(_, m, d)| (m, d)).collect();
        let mut pass = BirthdayPass::default();
        for client in self.store.clients_born_on(partner, &days).await? {
            let Some(birthday) = client.birth_date else {
                continue;
            };
            let Some(&(year, _, _)) = due
                .iter()
                .find(|&&(_, m, d)| (m, d) == (birthday.month, birthday.day))
            else {
                continue;
            };
            match in_tx!(self, |tx, now| self
                .birthday_tx(tx, partner, &client, year, now))
            {
                Ok(Some(_)) => pass.granted += 1,
                Ok(None) => {}
                Err(e) => pass
                    .failed
                    .push((partner, format!("client {}: {e}", client.id))),
            }
        }
        Ok(pass)
    }

    /// [`LoyaltyEngine::grant_birthdays`] at every partner; one partner's failure does not stop
    /// the others.
    pub async fn grant_birthdays_everywhere(&self) -> Result<BirthdayPass, EngineError> {
        let mut total = BirthdayPass::default();
        for partner in self.store.partner_ids().await? {
            match self.grant_birthdays(partner).await {
                Ok(p) => {
                    total.granted += p.granted;
                    total.failed.extend(p.failed);
                }
                Err(e) => total.failed.push((partner, e.to_string())),
            }
        }
        Ok(total)
    }

    /// Records a birth date the client gave (the bot) when the salon has none; `false` when
    /// one is known already (the CRM's card or an earlier answer: only staff change it).
    pub async fn set_birth_date(
        &self,
        partner: PartnerId,
        client: ClientId,
        date: BirthDate,
    ) -> Result<bool, EngineError> {
        in_tx!(self, |tx, _now| async {
            let found = client_of(tx, partner, client).await?;
            if found.birth_date.is_some() {
                return Ok(false);
            }
            let card = CardUpdate {
                name: None,
                email: None,
                birth_date: Some(date),
            };
            tx.update_card(partner, client, &card).await?;
            Ok::<_, EngineError>(true)
        })
    }

    async fn birthday_tx(
        &self,
        tx: &mut dyn StoreTx,
        partner: PartnerId,
        client: &Client,
        year: i32,
        now: i64,
    ) -> Result<Option<Posting>, EngineError> {
        let program = program_of(tx, partner).await?;
        let Some(bonus) = &program.birthday else {
            return Ok(None);
        };
        let key = format!("birthday:{}:{year}", client.id);
        let balance = tx.lock_balance(partner, client.id).await?;
        if tx.entry_by_key(partner, &key).await?.is_some() {
            return Ok(None);
        }
        let entry = NewEntry {
            idempotency_key: key,
            kind: EntryKind::Birthday,
            debit: Account::Issued,
            credit: Account::Client(client.id),
            amount: bonus.points,
            client_id: client.id,
            reverses: None,
            reason: Some(format!("birthday {year}")),
        };
        let expires = now.saturating_add(i64::from(bonus.valid_days) * DAY_MS);
        let posting = credit_until(tx, partner, &entry, balance, None, Some(expires), now).await?;
        let note = Notification::Birthday {
            points: posting.delta,
            balance: posting.balance,
            expires_at_ms: expires,
        };
        notify(tx, partner, client, note, now).await?;
        let level = program.level_of(client.level.as_deref()).map(|(_, n)| n);
        let key = format!("birthday:{}:{year}", client.id);
        fire_event(
            tx,
            partner,
            &program,
            When::Birthday,
            client,
            level,
            &key,
            true,
            now,
        )
        .await?;
        Ok(Some(posting))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Points;

    fn bonus(days_before: u32) -> BirthdayBonus {
        BirthdayBonus {
            points: Points(500),
            days_before,
            valid_days: 7,
            utc_offset_minutes: 180,
        }
    }

    #[test]
    fn the_days_ahead_cross_the_new_year_in_salon_time() {
        // 2026-12-30 22:00 UTC is 2026-12-31 01:00 in Moscow.
        let now = 1_798_668_000_000;
        assert_eq!(
            birthdays_due(now, &bonus(2)),
            vec![(2026, 12, 31), (2027, 1, 1), (2027, 1, 2)]
        );
    }

    #[test]
    fn a_leap_day_birthday_is_kept_on_the_28th_in_other_years() {
        // 2027-02-28 12:00 UTC.
        let now = 1_803_816_000_000;
        assert_eq!(
            birthdays_due(now, &bonus(0)),
            vec![(2027, 2, 28), (2027, 2, 29)]
        );
    }
}
