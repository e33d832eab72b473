//! `user add|remove|list`: who signs in to a salon's dashboard, with what role.

use loyalty_core::PartnerId;
use loyalty_core::access::{AccessStore, AddUserError, LinkPurpose, Role, StaffUser, normal_email};
use loyalty_core::audit::Actor;
use loyalty_store::SqlStore;
use loyalty_web::password;
use serde_json::{Value, json};

use super::{Usage, known_partner};

/// How long an invitation link works.
const INVITE_MS: i64 = 7 * 24 * 3600 * 1000;

fn user_json(u: &StaffUser) -> Value {
    json!({
        "id": u.id,
        "partner": u.partner,
        "email": u.email,
        "role": u.role.as_str(),
        "has_password": u.has_password,
        "telegram_chat_id": u.telegram_chat_id,
    })
}

/// `user add`: with a password (from standard input), or else an invitation link the person
/// opens once to set one.
#[allow(clippy::too_many_arguments)]
pub async fn user_add(
    store: &SqlStore,
    partner: i64,
    email: &str,
    role: Role,
    password: Option<String>,
    public_url: Option<&str>,
    actor: &Actor,
    now_ms: i64,
) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let Some(email) = normal_email(email) else {
        return Err(Usage(format!("--email {email:?} is not an e-mail address")).into());
    };
    let hash = match password {
        Some(p) => Some(
            password::hash_blocking(p)
                .await
                .map_err(|e| Usage(format!("the password: {e}")))?,
        ),
        None => None,
    };
    let user = store
        .add_user(partner, &email, role, hash.as_deref(), actor, now_ms)
        .await
        .map_err(|e| match e {
            AddUserError::EmailTaken(_) => anyhow::Error::from(Usage(e.to_string())),
            AddUserError::Store(s) => s.into(),
        })?;
    let mut out = user_json(&user);
    if hash.is_none() {
        let token = loyalty_web::new_token()?;
        store
            .create_link(
                &loyalty_web::token_hash(&token),
                user.id,
                LinkPurpose::Invite,
                now_ms + INVITE_MS,
            )
            .await?;
        let base = public_url.unwrap_or("").trim_end_matches('/');
        out["invite_url"] = json!(format!("{base}/invite/{token}"));
    }
    Ok(out)
}

pub fn user_text(v: &Value) -> String {
    let mut s = format!(
        "User {} ({}) signs in to partner {}'s dashboard",
        v["email"].as_str().unwrap_or_default(),
        v["role"].as_str().unwrap_or_default(),
        v["partner"]
    );
    if let Some(chat) = v["telegram_chat_id"].as_i64() {
        s.push_str(&format!(
            "; /login in the bot (chat {chat}) sends them a sign-in link"
        ));
    }
    if let Some(url) = v["invite_url"].as_str() {
        s.push_str(&format!(
            "\nNo password yet: give them this link (once, 7 days) to set one: {url}"
        ));
    }
    s
}

/// `user remove`: the user can no longer sign in; their sessions end now.
pub async fn user_remove(
    store: &SqlStore,
    partner: i64,
    email: &str,
    actor: &Actor,
    now_ms: i64,
) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let email = normal_email(email).unwrap_or_else(|| email.trim().to_lowercase());
    match store.remove_user(partner, &email, actor, now_ms).await? {
        Some(u) => Ok(user_json(&u)),
        None => Err(Usage(format!("{email} does not sign in to partner {partner}")).into()),
    }
}

/// `user chat`: the Telegram chat the bot sends this user's sign-in links to (`None` unlinks).
pub async fn user_chat(
    store: &SqlStore,
    partner: i64,
    email: &str,
    chat: Option<i64>,
) -> anyhow::Result<Value> {
    let partner = known_partner(store, partner).await?;
    let email = normal_email(email).unwrap_or_else(|| email.trim().to_lowercase());
    let Some((user, _)) = store
        .user_by_email(&email)
        .await?
        .filter(|(u, _)| u.partner == partner)
    else {
        return Err(Usage(format!("{email} does not sign in to partner {partner}")).into());
    };
    if chat == Some(0) {
        return Err(Usage("--chat must be a Telegram chat id".into()).into());
    }
    store.set_user_chat(user.id, chat).await?;
    let mut out = user_json(&user);
    out["telegram_chat_id"] = json!(chat);
    Ok(out)
}

/// `user list`.
pub async fn user_list(store: &SqlStore, partner: i64) -> anyhow::Result<Value> {
    let partner: PartnerId = known_partner(store, partner).await?;
    let users: Vec<Value> = store
        .users_of(partner)
        .await?
        .iter()
        .map(user_json)
        .collect();
    Ok(json!({ "partner": partner, "users": users }))
}

pub fn users_text(v: &Value) -> String {
    let users = v["users"].as_array().cloned().unwrap_or_default();
    if users.is_empty() {
        return format!(
            "Nobody signs in to partner {}'s dashboard yet",
            v["partner"]
        );
    }
    users
        .iter()
        .map(|u| {
            format!(
                "{:<32} {:<7}{}",
                u["email"].as_str().unwrap_or_default(),
                u["role"].as_str().unwrap_or_default(),
                if u["has_password"] == json!(false) {
                    "  (invited)"
                } else {
                    ""
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
