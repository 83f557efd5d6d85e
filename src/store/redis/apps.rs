//! Apps on Redis: `{a}:apps` (id → JSON) and `{a}:keys` (API-key hash → app id), one hash tag,
//! changed together by `lua/put_app.lua`.

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{RedisStore, keys};
use crate::store::{App, AppStore, SHARDS, StoreError, StoreResult, from_json, to_json};

const ATTEMPTS: usize = 16;

#[async_trait]
impl AppStore for RedisStore {
    async fn put_app(&self, app: &App) -> StoreResult<()> {
        let mut conn = self.conn();
        let document = to_json(app)?;
        for _ in 0..ATTEMPTS {
            let current: Option<Vec<u8>> = conn.hget(keys::APPS, &app.id).await?;
            let old_keys = match &current {
                Some(current) => from_json::<App>(current, "app")?
                    .key_hashes()
                    .copied()
                    .collect(),
                None => Vec::new(),
            };
            let mut invocation = self.scripts.put_app.prepare_invoke();
            invocation
                .key(keys::APPS)
                .key(keys::API_KEYS)
                .arg(&app.id)
                .arg(if current.is_some() { "1" } else { "0" })
                .arg(current.as_deref().unwrap_or_default())
                .arg(&document)
                .arg(old_keys.len());
            for hash in old_keys.iter().chain(app.key_hashes()) {
                invocation.arg(hash.as_slice());
            }
            let written: u8 = invocation.invoke_async(&mut conn).await?;
            if written == 1 {
                return Ok(());
            }
        }
        Err(StoreError::Contended(format!("app {}", app.id)))
    }

    async fn get_app(&self, app_id: &str) -> StoreResult<Option<App>> {
        let mut conn = self.conn();
        let raw: Option<Vec<u8>> = conn.hget(keys::APPS, app_id).await?;
        raw.map(|r| from_json(&r, "app")).transpose()
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        let mut conn = self.conn();
        let raw: Vec<Vec<u8>> = conn.hvals(keys::APPS).await?;
        raw.iter().map(|r| from_json(r, "app")).collect()
    }

    async fn app_by_api_key(&self, key_hash: &[u8; 32]) -> StoreResult<Option<App>> {
        let mut conn = self.conn();
        let app_id: Option<String> = conn.hget(keys::API_KEYS, key_hash.as_slice()).await?;
        match app_id {
            Some(id) => self.get_app(&id).await,
            None => Ok(None),
        }
    }

    async fn delete_app(&self, app_id: &str) -> StoreResult<bool> {
        let Some(previous) = self.get_app(app_id).await? else {
            return Ok(false);
        };
        let mut conn = self.conn();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for hash in previous.key_hashes() {
            pipe.hdel(keys::API_KEYS, hash.as_slice()).ignore();
        }
        pipe.hdel(keys::APPS, app_id).ignore();
        pipe.query_async::<()>(&mut conn).await?;
        // Shards live on different cluster nodes: one DEL each.
        let shards = (0..SHARDS).map(|shard| {
            let mut conn = conn.clone();
            async move { conn.del::<_, ()>(keys::shard(app_id, shard)).await }
        });
        futures::future::try_join_all(shards).await?;
        Ok(true)
    }
}
