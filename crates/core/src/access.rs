//! Who may use a salon's dashboard: staff users with a role, their sessions and one-time links.
//!
//! Rows only; the hashing of passwords and tokens lives in `loyalty-web`, which never stores a
//! token itself — only its SHA-256 — so a database dump signs nobody in.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::audit::Actor;
use crate::{PartnerId, StoreError};

/// What a staff member may do in the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the analytics, changes nothing.
    Viewer,
    /// The desk: clients, codes, visits, manual accruals and debits.
    Admin,
    /// Everything: the program, the integration, the team.
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Admin, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// Works at the desk: moves points, uses codes, enters visits.
    pub fn works_desk(self) -> bool {
        self >= Role::Admin
    }

    /// Runs the salon: its program, its integration, its people.
    pub fn runs_salon(self) -> bool {
        self == Role::Owner
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: owner, admin or viewer"))
    }
}

/// A person who signs in to one salon's dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffUser {
    pub id: i64,
    pub partner: PartnerId,
    /// Lower case, trimmed.
    pub email: String,
    pub role: Role,
    /// False until the person set a password (an invitation not yet taken up).
    pub has_password: bool,
    /// The Telegram chat the salon's bot sends sign-in links to.
    pub telegram_chat_id: Option<i64>,
    pub created_at_ms: i64,
}

/// A signed-in browser's session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffSession {
    pub user: StaffUser,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub last_seen_ms: i64,
}

/// What a one-time link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Set a password (an owner invited this person).
    Invite,
    /// Sign in without a password (sent by the salon's bot).
    SignIn,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Invite => "invite",
            LinkPurpose::SignIn => "sign_in",
        }
    }
}

/// Why a user could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddUserError {
    #[error("{0} already signs in to a salon; remove them there first")]
    EmailTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The dashboard's people, sessions and links.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Adds a user; an active user with the same e-mail anywhere is refused. The audit log
    /// records it (`user_added`, naming `actor`) in the same transaction.
    async fn add_user(
        &self,
        partner: PartnerId,
        email: &str,
        role: Role,
        password_hash: Option<&str>,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<StaffUser, AddUserError>;

    /// Removes a partner's user and revokes every session of theirs (`user_removed` in the
    /// audit log); `None` when there was no such user.
    async fn remove_user(
        &self,
        partner: PartnerId,
        email: &str,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<Option<StaffUser>, StoreError>;

    /// A partner's active users, owners first.
    async fn users_of(&self, partner: PartnerId) -> Result<Vec<StaffUser>, StoreError>;

    /// An active user by e-mail, with the password hash when one is set.
    async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(StaffUser, Option<String>)>, StoreError>;

    /// Sets (or replaces) a user's password hash.
    async fn set_password(&self, user: i64, hash: &str) -> Result<(), StoreError>;

    /// Links a user to a Telegram chat (the bot's sign-in links go there); `None` unlinks.
    async fn set_user_chat(&self, user: i64, chat: Option<i64>) -> Result<(), StoreError>;

    /// Active users whose chat is this one, across salons.
    async fn users_by_chat(&self, chat: i64) -> Result<Vec<StaffUser>, StoreError>;

    async fn create_session(
        &self,
        token_hash: &str,
        user: i64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError>;

    /// A live session: not revoked, not past its end, its user not removed.
    async fn session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<StaffSession>, StoreError>;

    async fn touch_session(&self, token_hash: &str, now_ms: i64) -> Result<(), StoreError>;

    async fn revoke_session(&self, token_hash: &str, now_ms: i64) -> Result<(), StoreError>;

    /// Revokes every session of a user (a password changed, a user removed); how many.
    async fn revoke_sessions_of(&self, user: i64, now_ms: i64) -> Result<u64, StoreError>;

    async fn create_link(
        &self,
        token_hash: &str,
        user: i64,
        purpose: LinkPurpose,
        expires_at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Uses a link once: its user when it is live and for this purpose; `None` otherwise
    /// (unknown, used, expired, its user removed).
    async fn use_link(
        &self,
        token_hash: &str,
        purpose: LinkPurpose,
        now_ms: i64,
    ) -> Result<Option<StaffUser>, StoreError>;

    /// A link's user without using it (the page that asks to confirm).
    async fn peek_link(
        &self,
        token_hash: &str,
        purpose: LinkPurpose,
        now_ms: i64,
    ) -> Result<Option<StaffUser>, StoreError>;
}

/// How long a sign-in link sent by the bot works.
pub const SIGN_IN_MINUTES: i64 = 10;

/// A one-time sign-in link made for a staff member's Telegram chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInLink {
    pub salon: String,
    pub email: String,
    pub url: String,
}

/// What the bot asks of the dashboard when a staff member sends `/login`: a link for each
/// dashboard user linked to the chat, usable once, for a few minutes. Empty: the chat is no
/// user's.
#[async_trait]
pub trait SignInLinks: Send + Sync {
    async fn sign_in_links(&self, chat: i64) -> Result<Vec<SignInLink>, StoreError>;
}

/// An e-mail as stored and compared: trimmed, lower case; `None` when it is not one.
pub fn normal_email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    let (local, domain) = e.split_once('@')?;
    let fine = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@');
    fine.then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_what_they_may_do() {
        assert!(Role::Owner.works_desk() && Role::Owner.runs_salon());
        assert!(Role::Admin.works_desk() && !Role::Admin.runs_salon());
        assert!(!Role::Viewer.works_desk() && !Role::Viewer.runs_salon());
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn emails_are_trimmed_and_lowered() {
        assert_eq!(
            normal_email(" Anna@Lotos.RU "),
            Some("anna@lotos.ru".into())
        );
        for bad in [
            "",
            "anna",
            "@lotos.ru",
            "anna@",
            "anna@lotos",
            "a b@x.ru",
            "a@b@c.ru",
        ] {
            assert_eq!(normal_email(bad), None, "{bad}");
        }
    }
}
