//! API tokens for integrators: long-lived bearer tokens that a signed-in person makes
//! for a program acting as them (an ERP sync, a reporting job). A token carries its
//! maker's rights, no more; it can be revoked at any time and ends at its expiry.
//!
//! Only a hash of each token is stored (BLAKE2b-256 of the secret, which is 32 random
//! bytes, so a fast hash suffices), under the internal form `_api_token` with the
//! record id `_api_token/<hash>`: a request's token is found with one read, and a copy
//! of the data folder does not give anyone a working token. The token text starts
//! with [`TOKEN_PREFIX`], so that it is told apart from a session token at once (and
//! found by secret scanners).

use blake2::{Blake2b, Digest, digest::consts::U32};
use serde::{Deserialize, Serialize};
use serde_json::json;
use stagecraft_store::{Commit, IndexValue, Page, RecordId, RecordWrite, Store, StoreError};

use crate::auth::new_token;

/// The start of every API token.
pub(crate) const TOKEN_PREFIX: &str = "sct_";
/// The internal form tokens are stored under; not a pack form, so no record endpoint
/// serves it.
const TOKEN_FORM: &str = "_api_token";
/// The most tokens one person may hold at a time.
pub(crate) const MAX_TOKENS_PER_USER: usize = 20;
/// The longest a token may live, in days.
pub(crate) const MAX_DAYS: u32 = 366;
const DAY_MS: i64 = 86_400_000;

/// A token as stored (without its secret).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct TokenInfo {
    /// The token's public id (for listing and revoking; not the secret).
    pub(crate) id: String,
    /// What the maker called it.
    pub(crate) name: String,
    /// Who made it; the token acts as them.
    pub(crate) user: String,
    /// When it was made (Unix milliseconds).
    pub(crate) created_at: i64,
    /// When it stops working (Unix milliseconds).
    pub(crate) expires_at: i64,
    /// When it was revoked, if it was.
    pub(crate) revoked_at: Option<i64>,
}

fn hash(secret: &str) -> String {
    let digest = Blake2b::<U32>::digest(secret.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn record_id(secret: &str) -> RecordId {
    RecordId::new(format!("{TOKEN_FORM}/{}", hash(secret)))
}

fn write(id: RecordId, version: Option<u64>, info: &TokenInfo) -> RecordWrite {
    let value = json!(info);
    let write = match version {
        None => RecordWrite::create(id, TOKEN_FORM, value),
        Some(version) => RecordWrite::update(id, TOKEN_FORM, version, value),
    };
    // Listing a person's tokens and finding one by its public id use the index.
    write
        .indexed("user", info.user.as_str())
        .indexed("id", info.id.as_str())
        .indexed("live", info.revoked_at.is_none())
}

/// Makes a token for `user`, valid for `days`; returns the secret (shown once) and
/// what is stored.
pub(crate) fn create(
    store: &dyn Store,
    user: &str,
    name: &str,
    days: u32,
    now: i64,
) -> Result<(String, TokenInfo), StoreError> {
    let secret = format!("{TOKEN_PREFIX}{}", new_token());
    let info = TokenInfo {
        id: new_token()[..16].to_owned(),
        name: name.to_owned(),
        user: user.to_owned(),
        created_at: now,
        expires_at: now + i64::from(days) * DAY_MS,
        revoked_at: None,
    };
    let mut commit = Commit::at(now);
    commit.records.push(write(record_id(&secret), None, &info));
    store.commit(commit)?;
    Ok((secret, info))
}

/// The user a token acts for, or why it does not work.
pub(crate) fn user_of(
    store: &dyn Store,
    secret: &str,
    now: i64,
) -> Result<Result<String, &'static str>, StoreError> {
    let Some(stored) = store.record(&record_id(secret))?.filter(|s| s.form == TOKEN_FORM) else {
        return Ok(Err("the API token is not valid"));
    };
    let Ok(info) = serde_json::from_value::<TokenInfo>(stored.value) else {
        return Ok(Err("the API token is not valid"));
    };
    Ok(if info.revoked_at.is_some() {
        Err("the API token was revoked")
    } else if now >= info.expires_at {
        Err("the API token has expired; make a new one")
    } else {
        Ok(info.user)
    })
}

/// The tokens of `user` (live and revoked), newest first.
pub(crate) fn of_user(store: &dyn Store, user: &str) -> Result<Vec<TokenInfo>, StoreError> {
    let mut tokens = Vec::new();
    for (_, _, info) in stored_of_user(store, user)? {
        tokens.push(info);
    }
    tokens.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
    Ok(tokens)
}

/// How many tokens of `user` still work.
pub(crate) fn live_count(store: &dyn Store, user: &str, now: i64) -> Result<usize, StoreError> {
    Ok(stored_of_user(store, user)?
        .iter()
        .filter(|(_, _, info)| info.revoked_at.is_none() && now < info.expires_at)
        .count())
}

fn stored_of_user(
    store: &dyn Store,
    user: &str,
) -> Result<Vec<(RecordId, u64, TokenInfo)>, StoreError> {
    let mut found = Vec::new();
    let mut page = Page::first(100);
    loop {
        let ids = store.records_by_index(TOKEN_FORM, "user", &IndexValue::from(user), page)?;
        let Some(last) = ids.last().cloned() else { break };
        for id in &ids {
            if let Some(stored) = store.record(id)? {
                if let Ok(info) = serde_json::from_value::<TokenInfo>(stored.value) {
                    found.push((id.clone(), stored.version, info));
                }
            }
        }
        if ids.len() < 100 {
            break;
        }
        page = Page::after(last, 100);
    }
    Ok(found)
}

/// Revokes the token `id` of `user`; `false` when they have no such live token.
pub(crate) fn revoke(
    store: &dyn Store,
    user: &str,
    id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let Some((record, version, mut info)) = stored_of_user(store, user)?
        .into_iter()
        .find(|(_, _, info)| info.id == id && info.revoked_at.is_none())
    else {
        return Ok(false);
    };
    info.revoked_at = Some(now);
    let mut commit = Commit::at(now);
    commit.records.push(write(record, Some(version), &info));
    store.commit(commit)?;
    Ok(true)
}
