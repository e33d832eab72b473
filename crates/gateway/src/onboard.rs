//! Onboarding's way to the CRMs ([`loyalty_web::onboard::Connector`]): connections made as
//! `connection add` makes them (the history import queued when there is API access), checked
//! and subscribed through the same adapters `serve` runs, audited as the owner who did it.

use std::sync::Arc;

use async_trait::async_trait;
use loyalty_core::audit::{Actor, AuditAction};
use loyalty_core::quota::Priority;
use loyalty_core::{
    AdapterError, Clock, ConnectionId, CrmConnection, CrmKind, PartnerId, PartnerStore, SystemClock,
};
use loyalty_store::SqlStore;
use loyalty_web::onboard::{ConnectError, Connector, Hooks, NewCrm, Probe, Step};
use serde_json::json;

use crate::bots::JoinLinks;
use crate::cli::{self, ConnectionAdd, CrmLogin};
use crate::config::Config;
use crate::connections::Connections;

/// The gateway's [`Connector`].
pub struct GatewayConnector {
    store: Arc<SqlStore>,
    config: Config,
    connections: Arc<Connections>,
    /// The clients' link to the salon's bot.
    links: Arc<JoinLinks>,
    /// Wakes `serve`'s importer: a new connection's history import starts at once.
    import_wake: Arc<tokio::sync::Notify>,
}

impl GatewayConnector {
    /// `config` with `listen` the address bound: webhook URLs name it when there is no public
    /// URL.
    pub fn new(
        store: Arc<SqlStore>,
        config: Config,
        connections: Arc<Connections>,
        links: Arc<JoinLinks>,
        import_wake: Arc<tokio::sync::Notify>,
    ) -> GatewayConnector {
        GatewayConnector {
            store,
            config,
            connections,
            links,
            import_wake,
        }
    }

    async fn adapter(
        &self,
        id: ConnectionId,
    ) -> Result<Arc<crate::connections::Connected>, AdapterError> {
        self.connections
            .by_id(id, Priority::Live)
            .await
            .map_err(|e| AdapterError::Transient(e.to_string()))?
            .ok_or_else(|| AdapterError::NotFound(format!("connection {id}")))
    }
}

const DAY_MS: i64 = 24 * 3600 * 1000;

#[async_trait]
impl Connector for GatewayConnector {
    async fn connect(
        &self,
        partner: PartnerId,
        crm: &NewCrm,
        actor: &Actor,
    ) -> Result<ConnectionId, ConnectError> {
        let kind = crm.crm;
        let internal = |e: loyalty_core::StoreError| ConnectError::Internal(e.to_string());
        let company = crm.company_id.trim();
        if self
            .store
            .connections_of(partner)
            .await
            .map_err(internal)?
            .iter()
            .any(|c| c.kind == kind && c.company_id == company)
        {
            return Err(ConnectError::AlreadyConnected);
        }
        let req = ConnectionAdd {
            partner: partner.0,
            crm: kind,
            company_id: company.to_owned(),
            partner_token: crm.partner_token.clone(),
            user_token: crm.user_token.clone(),
            login: CrmLogin {
                email: crm.email.clone(),
                password: crm.password.clone(),
                base_url: crm.base_url.clone(),
                app_id: crm.app_id.clone(),
                app_secret: crm.app_secret.clone(),
                api_url: None,
            },
            utc_offset_minutes: None,
            country: None,
        };
        let now = SystemClock.now_ms();
        let made = cli::connection_add(&self.store, &self.config, &req, now)
            .await
            .map_err(|e| match e.downcast::<cli::Usage>() {
                Ok(usage) => ConnectError::Refused(usage.0),
                Err(other) => ConnectError::Internal(format!("{other:#}")),
            })?;
        let id = made["id"]
            .as_i64()
            .ok_or_else(|| ConnectError::Internal("the connection has no id".into()))?;
        self.store
            .audit_now(
                partner,
                actor,
                AuditAction::CrmConnected,
                &json!({ "connection": id, "crm": kind, "company_id": company, "import": made["import"] }),
                now,
            )
            .await
            .map_err(internal)?;
        if made["import"].is_i64() {
            self.import_wake.notify_one();
        }
        Ok(ConnectionId(id))
    }

    async fn check(&self, connection: ConnectionId) -> Result<Vec<Probe>, ConnectError> {
        let settings = self
            .store
            .connection_settings(connection)
            .await
            .map_err(|e| ConnectError::Internal(e.to_string()))?;
        let found = self
            .adapter(connection)
            .await
            .map_err(|e| ConnectError::Internal(e.to_string()))?;
        let kind = found.connection.kind;
        let api = settings.is_some_and(|s| s.has_api());
        if !api && kind != CrmKind::Dikidi {
            return Ok(Vec::new());
        }
        let adapter = &found.adapter;
        let caps = adapter.capabilities();
        let now = SystemClock.now_ms();
        let mut probes = Vec::new();
        if caps.poll_records {
            let answer = adapter
                .records_between(now - DAY_MS, now, 1)
                .await
                .map(|p| p.records.len());
            probes.push(Probe {
                step: Step::Records,
                answer,
            });
        }
        if caps.records {
            let answer = adapter.list_clients(1).await.map(|p| {
                p.total
                    .and_then(|t| usize::try_from(t).ok())
                    .unwrap_or(p.clients.len())
            });
            probes.push(Probe {
                step: Step::Clients,
                answer,
            });
        }
        probes.push(Probe {
            step: Step::Services,
            answer: adapter.list_services().await.map(|s| s.len()),
        });
        Ok(probes)
    }

    async fn register_webhooks(
        &self,
        connection: ConnectionId,
        actor: &Actor,
    ) -> Result<Hooks, AdapterError> {
        let found = self.adapter(connection).await?;
        let c = &found.connection;
        if c.kind == CrmKind::Dikidi {
            return Ok(Hooks::None);
        }
        let api = self
            .store
            .connection_settings(c.id)
            .await
            .map_err(|e| AdapterError::Transient(e.to_string()))?
            .is_some_and(|s| s.has_api());
        if !api {
            return Ok(Hooks::Paste);
        }
        let url = self.webhook_url(c);
        match found.adapter.register_webhooks(&url).await {
            Ok(tables) => {
                // The subscription stands whatever the log says: a failed audit line is
                // reported, not turned into a failed registration.
                if let Err(e) = self
                    .store
                    .audit_now(
                        c.partner_id,
                        actor,
                        AuditAction::WebhooksRegistered,
                        &json!({ "connection": c.id, "tables": tables }),
                        SystemClock.now_ms(),
                    )
                    .await
                {
                    tracing::warn!(error = %e, "webhooks registered but not audited");
                }
                Ok(Hooks::Registered(tables))
            }
            Err(AdapterError::Unsupported(_)) => Ok(Hooks::Paste),
            Err(e) => Err(e),
        }
    }

    fn recent_delivery(&self, connection: ConnectionId) -> Option<i64> {
        self.connections.health().unflushed_webhook(connection)
    }

    fn webhook_url(&self, connection: &CrmConnection) -> String {
        cli::webhook_url(&self.config, connection.kind, &connection.webhook_secret)
    }

    async fn join_link(&self, partner: PartnerId) -> Option<String> {
        // Only a salon that exists has a link.
        PartnerStore::partner(self.store.as_ref(), partner)
            .await
            .ok()??;
        self.links.link(partner).await.ok()
    }
}
