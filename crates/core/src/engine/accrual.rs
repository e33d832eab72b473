//! Accrual: a CRM event applied exactly once — visits (the target of a record against what it
//! already earned), client cards, the welcome bonus.

use super::campaign::{counted, first_earned};
use super::custom::{fire_visit, on_visits, triggers_allowed};
use super::level::rise;
use super::offer::{release_offer, settle_offers};
use super::posting::{
    client_of, credit, credit_pending, debit, notify, program_of, take_pending, version_of,
};
use super::referral::{concerns_referrals, settle_referral};
use crate::campaign::qualifies;
use crate::event::{ClientEvent, ClientRef};
use crate::history::Visit;
use crate::inbox::Source;
use crate::ledger::{Account, EntryKind, NewEntry};
use crate::level::Terms;
use crate::outbox::Notification;
use crate::store::{CardUpdate, DeliveryRecord, RecordState};
use crate::{
    Client, ClientId, CrmConnection, CrmEvent, EngineError, LoyaltyEngine, LoyaltyPaid, MoneyError,
    Outcome, PartnerId, Points, Posting, Program, ProgramVersion, StoreTx, VisitEvent,
};

impl LoyaltyEngine {
    /// Applies one normalized CRM event for a connection, exactly once whatever the order and
    /// number of deliveries.
    pub async fn apply_event(
        &self,
        connection: &CrmConnection,
        event: &CrmEvent,
    ) -> Result<Outcome, EngineError> {
        self.apply_event_from(connection, event, Source::Webhook)
            .await
    }

    /// [`LoyaltyEngine::apply_event`] for an event from `source`: the history row says where
    /// its state came from, and an import of the past tells no client.
    pub async fn apply_event_from(
        &self,
        connection: &CrmConnection,
        event: &CrmEvent,
        source: Source,
    ) -> Result<Outcome, EngineError> {
        if event.company_id() != connection.company_id {
            return Err(EngineError::WrongCompany {
                expected: connection.company_id.clone(),
                got: event.company_id().to_owned(),
            });
        }
        match event {
            CrmEvent::Visit(v) => self.apply_visit(connection, v, source).await,
            CrmEvent::Sale(s) => self.apply_visit(connection, &s.as_visit(), source).await,
            CrmEvent::Client(c) => {
                in_tx!(self, |tx, now| self.client_tx(tx, connection, c, now))
            }
            CrmEvent::Other(o) => {
                in_tx!(self, |tx, now| async {
                    let outcome = Outcome::Ignored;
                    let id = o.resource_id.clone();
                    let d = delivery(connection, &o.resource, id, &outcome, now);
                    tx.record_delivery(connection.partner_id, &d).await?;
                    Ok::<_, EngineError>(outcome)
                })
            }
        }
    }

    /// Applies the current state of a visit record: posts the difference between what the
    /// record should have earned and what it already earned.
    pub async fn apply_visit(
        &self,
        connection: &CrmConnection,
        visit: &VisitEvent,
        source: Source,
    ) -> Result<Outcome, EngineError> {
        applicable(visit)?;
        in_tx!(self, |tx, now| self
            .visit_tx(tx, connection, visit, source, None, now))
    }

    /// [`LoyaltyEngine::apply_visit`] with the caller's `seal` written last in the visit's own
    /// transaction; `None` when the seal refused it (and nothing of the visit stays).
    pub async fn apply_visit_sealed(
        &self,
        connection: &CrmConnection,
        visit: &VisitEvent,
        source: Source,
        seal: &dyn crate::seal::Seal,
    ) -> Result<Option<Outcome>, EngineError> {
        if visit.company_id != connection.company_id {
            return Err(EngineError::WrongCompany {
                expected: connection.company_id.clone(),
                got: visit.company_id.clone(),
            });
        }
        applicable(visit)?;
        let sealed = in_tx!(self, |tx, now| async {
            let outcome = self
                .visit_tx(tx, connection, visit, source, None, now)
                .await?;
            if seal.seal(tx, &outcome).await? {
                Ok(outcome)
            } else {
                Err(EngineError::Sealed)
            }
        });
        match sealed {
            Ok(outcome) => Ok(Some(outcome)),
            Err(EngineError::Sealed) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn visit_tx(
        &self,
        tx: &mut dyn StoreTx,
        conn: &CrmConnection,
        visit: &VisitEvent,
        source: Source,
        note: Option<&str>,
        now: i64,
    ) -> Result<Outcome, EngineError> {
        let partner = conn.partner_id;
        let current = version_of(tx, partner).await?;
        if visit.currency != current.program.currency {
            return Err(EngineError::CurrencyMismatch {
                program: current.program.currency,
                event: visit.currency,
            });
        }
        let mut state = tx.lock_record(partner, conn.id, &visit.record_id).await?;
        let fingerprint = visit.fingerprint();

        let outcome = if matches!((visit.version, state.version), (Some(new), Some(old)) if new < old)
        {
            Outcome::Stale
        } else if state.fingerprint.as_deref() == Some(fingerprint.as_str())
            && (visit.version.is_none() || visit.version == state.version)
        {
            Outcome::Duplicate
        } else {
            let resolved = match &visit.client {
                Some(r) => resolve_client(tx, conn, r, &CardUpdate::default(), now)
                    .await?
                    .map(|(c, _)| c),
                None => None,
            };
            let before = state.client_id;
            let client = match (resolved, state.client_id) {
                (Some(c), _) => Some(c),
                (None, Some(id)) => tx.client(partner, id).await?,
                (None, None) => None,
            };
            let postings = match &client {
                // Nobody to credit yet; a later delivery naming the client will settle it.
                None => Vec::new(),
                Some(client) => {
                    let mut terms = match state.terms.take() {
                        Some(fixed) => fixed,
                        None => first_terms(tx, partner, &current, visit, client).await?,
                    };
                    let mut program = terms_program(tx, partner, &current, &terms).await?;
                    if !program.custom_triggers.is_empty()
                        && !triggers_allowed(tx, partner, &program).await?
                    {
                        // A salon off the Enterprise plan keeps its triggers, run by none.
                        program.custom_triggers.clear();
                    }
                    // A visit before the connection's points boundary (the imported past) is
                    // history only.
                    let earns = !conn.before_points(visit.visit_at_ms);
                    if earns
                        && terms.earned.is_none()
                        && (!program.campaigns.is_empty() || on_visits(&program))
                        && qualifies(&program, visit)?
                    {
                        let record_key = format!("{}:{}", conn.id, visit.record_id);
                        let earned = first_earned(
                            tx,
                            partner,
                            &program,
                            visit,
                            client,
                            terms.level.as_deref(),
                            &record_key,
                            (conn.id, &visit.record_id),
                            counted(state.status),
                            now,
                        )
                        .await?;
                        terms.earned = Some(earned);
                    }
                    let target = if earns {
                        program.target_with(visit, terms.earned.as_ref(), terms.level.as_deref())?
                    } else {
                        Points::ZERO
                    };
                    state.terms = Some(terms);
                    let postings = self
                        .settle_record(
                            tx,
                            conn,
                            &program,
                            visit,
                            &mut state,
                            client,
                            target,
                            source.notifies(),
                            note,
                            now,
                        )
                        .await?;
                    // The visit's triggers, after its points (their events follow them).
                    if earns
                        && on_visits(&program)
                        && let Some(terms) = &state.terms
                        && let Some(earned) = &terms.earned
                    {
                        let record_key = format!("{}:{}", conn.id, visit.record_id);
                        let cx = earned.context(terms.level.as_deref());
                        let tell = source.notifies();
                        fire_visit(
                            tx,
                            partner,
                            &program,
                            visit,
                            client,
                            &record_key,
                            cx,
                            tell,
                            now,
                        )
                        .await?;
                    }
                    if earns {
                        let record_key = format!("{}:{}", conn.id, visit.record_id);
                        // A record that moved from another client: her offer for it goes
                        // back first.
                        if let Some(old) = before.filter(|b| *b != client.id) {
                            let old = client_of(tx, partner, old).await?;
                            let tell = source.notifies();
                            release_offer(tx, partner, &program, &old, &record_key, tell, now)
                                .await?;
                        }
                        settle_offers(
                            tx,
                            partner,
                            &program,
                            client,
                            &record_key,
                            visit,
                            source.notifies(),
                            now,
                        )
                        .await?;
                    }
                    if earns && concerns_referrals(&program, &current.program) {
                        let record_key = format!("{}:{}", conn.id, visit.record_id);
                        let tell = source.notifies();
                        settle_referral(
                            tx,
                            partner,
                            &program,
                            &current.program,
                            client,
                            &record_key,
                            visit,
                            tell,
                            now,
                        )
                        .await?;
                    }
                    postings
                }
            };
            state.version = state.version.max(visit.version);
            state.fingerprint = Some(fingerprint);
            state.status = Some(visit.status);
            // The history row is the record's row: points and history change together.
            let row = Visit::of(partner, conn.id, visit, state.client_id, source, now);
            tx.save_record(&state, &row).await?;
            if let Some(client) = &client {
                // Levels rise by the program in force now, over its window ending now.
                let levels = current.program.levels.as_ref();
                let from = levels.map_or(i64::MIN, |l| l.window_from(now));
                let measure = tx.refresh_summary(partner, client.id, from).await?;
                rise(
                    tx,
                    partner,
                    &current.program,
                    client,
                    measure,
                    source.notifies(),
                    now,
                )
                .await?;
            }
            if let Some(moved_from) = before.filter(|b| Some(*b) != state.client_id) {
                tx.refresh_summary(partner, moved_from, i64::MIN).await?;
            }
            if postings.is_empty() {
                Outcome::NoChange {
                    client_id: state.client_id,
                }
            } else {
                Outcome::Applied { postings }
            }
        };
        let id = Some(visit.record_id.clone());
        tx.record_delivery(partner, &delivery(conn, "record", id, &outcome, now))
            .await?;
        Ok(outcome)
    }

    /// Brings the record's accrued points to `target`, moving them when the record changed
    /// client. Balances are locked in ascending client id order.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn settle_record(
        &self,
        tx: &mut dyn StoreTx,
        conn: &CrmConnection,
        program: &Program,
        visit: &VisitEvent,
        state: &mut RecordState,
        new_client: &Client,
        target: Points,
        tell_client: bool,
        note: Option<&str>,
        now: i64,
    ) -> Result<Vec<Posting>, EngineError> {
        let partner = conn.partner_id;
        let mut steps: Vec<(Client, Points)> = Vec::with_capacity(2);
        match state.client_id {
            Some(old) if old != new_client.id && state.accrued != Points::ZERO => {
                let old_client = tx
                    .client(partner, old)
                    .await?
                    .ok_or(EngineError::UnknownClient(old))?;
                steps.push((old_client, -state.accrued));
                if target != Points::ZERO {
                    steps.push((new_client.clone(), target));
                }
                steps.sort_by_key(|(c, _)| c.id);
            }
            _ => {
                let delta = target - state.accrued;
                if delta != Points::ZERO {
                    steps.push((new_client.clone(), delta));
                }
            }
        }
        state.client_id = Some(new_client.id);

        let record_key = format!("{}:{}", conn.id, visit.record_id);
        let mut postings = Vec::with_capacity(steps.len());
        for (client, delta) in steps {
            state.postings += 1;
            let key = format!("visit:{record_key}:{}", state.postings);
            let balance = tx.lock_balance(partner, client.id).await?;
            let (posting, notification) = if delta.is_positive() {
                let pending = program.pending_days > 0;
                let entry = NewEntry {
                    idempotency_key: key,
                    kind: EntryKind::Accrual,
                    debit: Account::Issued,
                    credit: if pending {
                        Account::Pending(client.id)
                    } else {
                        Account::Client(client.id)
                    },
                    amount: delta,
                    client_id: client.id,
                    reverses: None,
                    reason: Some(format!("visit {}", visit.record_id)),
                };
                let (posting, pending_until_ms) = if pending {
                    let (entry_id, until) =
                        credit_pending(tx, partner, program, &entry, Some(&record_key), now)
                            .await?;
                    let posting = Posting {
                        client_id: client.id,
                        entry_id,
                        delta,
                        balance,
                        unbacked: Points::ZERO,
                    };
                    (posting, Some(until))
                } else {
                    let posting = credit(
                        tx,
                        partner,
                        program,
                        &entry,
                        balance,
                        Some(&record_key),
                        now,
                    )
                    .await?;
                    (posting, None)
                };
                state.last_accrual = Some(posting.entry_id);
                let note = Notification::Accrued {
                    points: delta,
                    paid_minor: visit.paid_minor(),
                    currency: visit.currency,
                    balance: posting.balance,
                    record_id: visit.record_id.clone(),
                    pending_until_ms,
                };
                (posting, note)
            } else {
                let amount = -delta;
                // Staff's reason for a correction at the desk, else what the CRM changed.
                let reason = match note {
                    Some(note) => format!("visit {} corrected: {note}", visit.record_id),
                    None => format!("visit {} is {}", visit.record_id, visit.status),
                };
                let mut entry = NewEntry {
                    idempotency_key: key,
                    kind: EntryKind::Reversal,
                    debit: Account::Client(client.id),
                    credit: Account::Issued,
                    amount,
                    client_id: client.id,
                    reverses: state.last_accrual,
                    reason: Some(reason.clone()),
                };
                // What is still pending of this visit goes first; the rest leaves the balance.
                let pending = take_pending(tx, partner, entry.clone(), &record_key, now).await?;
                let rest = amount - pending.map_or(Points::ZERO, |(_, taken)| taken);
                let posting = match pending {
                    Some((entry_id, _)) if !rest.is_positive() => Posting {
                        client_id: client.id,
                        entry_id,
                        delta,
                        balance,
                        unbacked: Points::ZERO,
                    },
                    _ => {
                        if pending.is_some() {
                            state.postings += 1;
                            entry.idempotency_key =
                                format!("visit:{record_key}:{}", state.postings);
                        }
                        entry.amount = rest;
                        let mut posting =
                            debit(tx, partner, &entry, balance, Some(&record_key), now).await?;
                        posting.delta = delta;
                        posting
                    }
                };
                let note = Notification::Reversed {
                    points: amount,
                    unbacked: posting.unbacked,
                    balance: posting.balance,
                    record_id: visit.record_id.clone(),
                    reason,
                };
                (posting, note)
            };
            state.accrued += delta;
            if tell_client {
                notify(tx, partner, &client, notification, now).await?;
            }
            postings.push(posting);
        }
        Ok(postings)
    }

    pub(super) async fn client_tx(
        &self,
        tx: &mut dyn StoreTx,
        conn: &CrmConnection,
        event: &ClientEvent,
        now: i64,
    ) -> Result<Outcome, EngineError> {
        program_of(tx, conn.partner_id).await?;
        let r = ClientRef {
            external_id: Some(event.external_id.clone()),
            phone: event.phone.clone(),
            name: event.name.clone(),
        };
        let card = CardUpdate {
            name: None,
            email: event.email.clone().filter(|e| !e.trim().is_empty()),
            birth_date: event.birth_date,
        };
        // A card deleted in the CRM creates nobody; an existing client keeps points and history.
        let resolved = if event.deleted {
            None
        } else {
            resolve_client(tx, conn, &r, &card, now).await?
        };
        let outcome = match resolved {
            Some((client, created)) => Outcome::ClientSynced {
                client_id: client.id,
                created,
            },
            None => Outcome::Ignored,
        };
        let id = Some(event.external_id.clone());
        tx.record_delivery(
            conn.partner_id,
            &delivery(conn, "client", id, &outcome, now),
        )
        .await?;
        Ok(outcome)
    }

    /// Grants the program's welcome bonus once per client; `None` when the program has none
    /// or it was granted already.
    pub async fn grant_welcome_bonus(
        &self,
        partner: PartnerId,
        client_id: ClientId,
    ) -> Result<Option<Posting>, EngineError> {
        in_tx!(self, |tx, now| async {
            let program = program_of(tx, partner).await?;
            let client = client_of(tx, partner, client_id).await?;
            if !program.welcome_bonus.is_positive() {
                return Ok(None);
            }
            let key = format!("welcome:{client_id}");
            let balance = tx.lock_balance(partner, client_id).await?;
            if tx.entry_by_key(partner, &key).await?.is_some() {
                return Ok(None);
            }
            let entry = NewEntry {
                idempotency_key: key,
                kind: EntryKind::Welcome,
                debit: Account::Issued,
                credit: Account::Client(client_id),
                amount: program.welcome_bonus,
                client_id,
                reverses: None,
                reason: Some("welcome bonus".to_owned()),
            };
            let posting = credit(tx, partner, &program, &entry, balance, None, now).await?;
            let note = Notification::Welcome {
                points: posting.delta,
                balance: posting.balance,
            };
            notify(tx, partner, &client, note, now).await?;
            Ok::<_, EngineError>(Some(posting))
        })
    }
}

pub(super) fn delivery(
    conn: &CrmConnection,
    resource: &str,
    resource_id: Option<String>,
    outcome: &Outcome,
    now: i64,
) -> DeliveryRecord {
    DeliveryRecord {
        connection_id: conn.id,
        resource: resource.to_owned(),
        resource_id,
        outcome: outcome.label().to_owned(),
        delta: outcome.delta(),
        received_at_ms: now,
    }
}

/// The terms a record is first applied to its client with: the program version in force at the
/// visit's time and the client's level now.
async fn first_terms(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    current: &ProgramVersion,
    visit: &VisitEvent,
    client: &Client,
) -> Result<Terms, EngineError> {
    let at_visit = match visit.visit_at_ms {
        Some(at) if at < current.effective_from_ms => Some(tx.program_in_force(partner, at).await?),
        _ => None,
    };
    let version = at_visit.as_ref().unwrap_or(current);
    Ok(Terms {
        earned: None,
        version: version.version,
        level: version
            .program
            .level_of(client.level.as_deref())
            .map(|(_, name)| name.to_owned()),
    })
}

/// The program a record's terms compute with: their version, at their level.
async fn terms_program(
    tx: &mut dyn StoreTx,
    partner: PartnerId,
    current: &ProgramVersion,
    terms: &Terms,
) -> Result<Program, EngineError> {
    let program = if terms.version == current.version {
        current.program.at_level(terms.level.as_deref())
    } else {
        tx.program_version(partner, terms.version)
            .await?
            .program
            .at_level(terms.level.as_deref())
    };
    Ok(program)
}

/// The client a CRM reference names: by its CRM id, else by phone (created when new — a
/// "virtual" client until they link Telegram). `None` when neither identifies anyone.
///
/// The CRM owns the card: a known CRM id whose card now has another phone moves our client to
/// that phone, balance and history with it; when another client of ours already has that phone,
/// the CRM id is pointed at them instead (two cards with one phone are one client here). The
/// name, and from a client's own card the e-mail and birth date, follow the CRM.
pub(super) async fn resolve_client(
    tx: &mut dyn StoreTx,
    conn: &CrmConnection,
    r: &ClientRef,
    card: &CardUpdate,
    now: i64,
) -> Result<Option<(Client, bool)>, EngineError> {
    let partner = conn.partner_id;
    let known = match &r.external_id {
        Some(ext) => tx.client_by_external_id(partner, conn.id, ext).await?,
        None => None,
    };
    let (mut client, created) = match (known, &r.phone) {
        (Some(c), Some(phone)) if *phone != c.phone => {
            match tx.client_by_phone(partner, phone).await? {
                None => {
                    tx.set_client_phone(partner, c.id, phone).await?;
                    let moved = tx.client(partner, c.id).await?;
                    (moved.ok_or(EngineError::UnknownClient(c.id))?, false)
                }
                Some(holder) => {
                    if let Some(ext) = &r.external_id {
                        tx.relink_external_id(partner, conn.id, ext, holder.id)
                            .await?;
                    }
                    (holder, false)
                }
            }
        }
        (Some(c), _) => (c, false),
        (None, None) => return Ok(None),
        (None, Some(phone)) => {
            let name = r.name.as_deref().filter(|n| !n.trim().is_empty());
            // Most visits are of clients the salon has: one read finds them.
            let (c, created) = match tx.client_by_phone(partner, phone).await? {
                Some(known) => (known, false),
                None => tx.insert_client(partner, phone, name, now).await?,
            };
            if let Some(ext) = &r.external_id {
                tx.link_external_id(partner, conn.id, ext, c.id).await?;
            }
            (c, created)
        }
    };
    let mut update = CardUpdate {
        name: r
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty() && client.name.as_deref() != Some(*n))
            .map(str::to_owned),
        email: card
            .email
            .clone()
            .filter(|e| client.email.as_ref() != Some(e)),
        birth_date: card.birth_date.filter(|b| client.birth_date != Some(*b)),
    };
    if created {
        update.name = None;
    }
    if !update.is_empty() {
        tx.update_card(partner, client.id, &update).await?;
        if let Some(name) = update.name {
            client.name = Some(name);
        }
        if let Some(email) = update.email {
            client.email = Some(email);
        }
        if let Some(birth) = update.birth_date {
            client.birth_date = Some(birth);
        }
    }
    Ok(Some((client, created)))
}

/// Whether a visit's delivery can be applied as it is.
fn applicable(visit: &VisitEvent) -> Result<(), EngineError> {
    if visit.needs_refetch {
        return Err(EngineError::NeedsRefetch {
            record_id: visit.record_id.clone(),
        });
    }
    if let LoyaltyPaid::Ask(_) = visit.loyalty_paid {
        return Err(EngineError::PaymentsUnknown {
            record_id: visit.record_id.clone(),
        });
    }
    if let Some(bad) = visit.lines.iter().find(|l| l.paid_minor < 0) {
        return Err(MoneyError::Negative(bad.paid_minor).into());
    }
    Ok(())
}
