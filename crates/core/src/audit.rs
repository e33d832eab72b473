//! Plans and the audit log.
//!
//! A partner's **plan** says what the product serves it: Basic (manual accrual and debit, basic
//! statistics), Pro (the CRM integration and automatic accrual, reminders, analytics),
//! Enterprise (custom triggers, the API, outbound webhooks). A capability is refused where it is
//! served, not only hidden.
//!
//! The **audit log** is append-only: who did what to a partner's program and clients, when, and
//! from where (the CLI, a staff chat in the bot, later the dashboard and the API).

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::PartnerId;
use crate::store::StoreError;

/// A partner's subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Basic,
    #[default]
    Pro,
    Enterprise,
}

/// What a plan may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Manual accrual and debit, codes at the desk.
    Manual,
    /// CRM webhooks, the poller, the history import, automatic accrual.
    CrmIntegration,
    Reminders,
    Analytics,
    CustomTriggers,
    Api,
    OutboundWebhooks,
}

impl Capability {
    /// The least plan that serves it.
    pub fn least_plan(self) -> Plan {
        match self {
            Capability::Manual => Plan::Basic,
            Capability::CrmIntegration | Capability::Reminders | Capability::Analytics => Plan::Pro,
            Capability::CustomTriggers | Capability::Api | Capability::OutboundWebhooks => {
                Plan::Enterprise
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Manual => "manual accrual and debit",
            Capability::CrmIntegration => "the CRM integration",
            Capability::Reminders => "reminders",
            Capability::Analytics => "analytics",
            Capability::CustomTriggers => "custom triggers",
            Capability::Api => "the API",
            Capability::OutboundWebhooks => "outbound webhooks",
        }
    }
}

/// A capability the partner's plan does not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "partner {partner} is on the {plan} plan: {} needs {} or above",
    .capability.as_str(),
    .capability.least_plan()
)]
pub struct NotInPlan {
    pub partner: PartnerId,
    pub plan: Plan,
    pub capability: Capability,
}

impl Plan {
    pub const ALL: [Plan; 3] = [Plan::Basic, Plan::Pro, Plan::Enterprise];

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Basic => "basic",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    pub fn allows(self, c: Capability) -> bool {
        self >= c.least_plan()
    }

    /// `Ok` when the plan serves `c`, else the refusal that names both.
    pub fn check(self, partner: PartnerId, c: Capability) -> Result<(), NotInPlan> {
        if self.allows(c) {
            Ok(())
        } else {
            Err(NotInPlan {
                partner,
                plan: self,
                capability: c,
            })
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Plan::Basic => "Basic",
            Plan::Pro => "Pro",
            Plan::Enterprise => "Enterprise",
        };
        f.write_str(name)
    }
}

impl FromStr for Plan {
    type Err = String;

    fn from_str(s: &str) -> Result<Plan, String> {
        Plan::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown plan {s:?}: basic, pro or enterprise"))
    }
}

/// Who acts and from where: `anna` via `cli`, chat `123` via `telegram`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub via: String,
}

impl Actor {
    pub fn new(name: impl Into<String>, via: impl Into<String>) -> Actor {
        Actor {
            name: name.into(),
            via: via.into(),
        }
    }

    /// The engine acting for an embedder that named nobody.
    pub fn system() -> Actor {
        Actor::new("system", "engine")
    }
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    ManualAccrual,
    ManualDebit,
    CodeUsed,
    ProgramChanged,
    PlanChanged,
    LevelSet,
    /// A visit entered at the desk.
    VisitEntered,
    /// A desk visit's bill corrected, or the visit cancelled.
    VisitCorrected,
    /// A file of clients and visits (and opening balances) imported.
    FileImported,
    /// A dashboard user added (or invited) with a role.
    UserAdded,
    /// A dashboard user removed, their sessions revoked.
    UserRemoved,
    /// The clients list (personal data) exported from the dashboard.
    ClientsExported,
    /// A reward added to the catalog.
    RewardAdded,
    /// A reward taken off the catalog.
    RewardRemoved,
    /// A CRM connected (onboarding).
    CrmConnected,
    /// A connection's webhook subscribed through its CRM's API.
    WebhooksRegistered,
    /// A partner API key made (its prefix and scope; never the key).
    ApiKeyCreated,
    /// A partner API key revoked.
    ApiKeyRevoked,
    /// One client's personal data exported on request (152-FZ).
    ClientExported,
    /// One client's personal data removed on request (152-FZ); the ledger stays.
    ClientForgotten,
}

impl AuditAction {
    pub const ALL: [AuditAction; 20] = [
        AuditAction::ManualAccrual,
        AuditAction::ManualDebit,
        AuditAction::CodeUsed,
        AuditAction::ProgramChanged,
        AuditAction::PlanChanged,
        AuditAction::LevelSet,
        AuditAction::VisitEntered,
        AuditAction::VisitCorrected,
        AuditAction::FileImported,
        AuditAction::UserAdded,
        AuditAction::UserRemoved,
        AuditAction::ClientsExported,
        AuditAction::RewardAdded,
        AuditAction::RewardRemoved,
        AuditAction::CrmConnected,
        AuditAction::WebhooksRegistered,
        AuditAction::ApiKeyCreated,
        AuditAction::ApiKeyRevoked,
        AuditAction::ClientExported,
        AuditAction::ClientForgotten,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ManualAccrual => "manual_accrual",
            AuditAction::ManualDebit => "manual_debit",
            AuditAction::CodeUsed => "code_used",
            AuditAction::ProgramChanged => "program_changed",
            AuditAction::PlanChanged => "plan_changed",
            AuditAction::LevelSet => "level_set",
            AuditAction::VisitEntered => "visit_entered",
            AuditAction::VisitCorrected => "visit_corrected",
            AuditAction::FileImported => "file_imported",
            AuditAction::UserAdded => "user_added",
            AuditAction::UserRemoved => "user_removed",
            AuditAction::ClientsExported => "clients_exported",
            AuditAction::RewardAdded => "reward_added",
            AuditAction::RewardRemoved => "reward_removed",
            AuditAction::CrmConnected => "crm_connected",
            AuditAction::WebhooksRegistered => "webhooks_registered",
            AuditAction::ApiKeyCreated => "api_key_created",
            AuditAction::ApiKeyRevoked => "api_key_revoked",
            AuditAction::ClientExported => "client_exported",
            AuditAction::ClientForgotten => "client_forgotten",
        }
    }

    pub fn parse(s: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub actor: Actor,
    pub action: AuditAction,
    /// What it was done to and with: client, points, reason, code, version…
    pub detail: Value,
    pub at_ms: i64,
}

/// The audit log inside a transaction: written with what it records.
#[async_trait]
pub trait AuditTx: Send {
    async fn audit(
        &mut self,
        partner: PartnerId,
        actor: &Actor,
        action: AuditAction,
        detail: &Value,
        at_ms: i64,
    ) -> Result<(), StoreError>;
}

/// Reading the audit log, and the partner's plan.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// The latest `limit` entries, newest first.
    async fn audit_log(
        &self,
        partner: PartnerId,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Sets the partner's plan and logs the change in one transaction; the plan before.
    async fn set_plan(
        &self,
        partner: PartnerId,
        plan: Plan,
        actor: &Actor,
        at_ms: i64,
    ) -> Result<Plan, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_plan_serves_its_own_and_the_plans_below() {
        assert!(Plan::Basic.allows(Capability::Manual));
        assert!(!Plan::Basic.allows(Capability::CrmIntegration));
        assert!(Plan::Pro.allows(Capability::CrmIntegration));
        assert!(!Plan::Pro.allows(Capability::Api));
        assert!(Plan::Enterprise.allows(Capability::Api));
        let refusal = Plan::Basic
            .check(PartnerId(3), Capability::CrmIntegration)
            .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "partner 3 is on the Basic plan: the CRM integration needs Pro or above"
        );
        assert_eq!("Enterprise".parse::<Plan>(), Ok(Plan::Enterprise));
        assert!("gold".parse::<Plan>().is_err());
    }
}
